import type { ChannelEntry, ChannelLease, LedgerTally } from '../../stores/ChannelStore.js'
import { entryJson } from '../../stores/entryJson.js'
import { ChannelStoreError } from '../../stores/errors.js'
import { onExit, thisHolder } from '../holder.js'
import { type StoredChannel, states } from './rows.js'
import { type Database, storeError, transaction } from './sqlite.js'
import type { Statements } from './statements.js'

/**
 * How long a lease lasts unless renewed (ms). A holder renews it every third of that while it
 * runs. On this host its process is checked instead (free at once when dead, never taken over
 * while alive, whatever the clock says), so this only bounds how long a holder whose process
 * cannot be checked (on another host, in another pid namespace) keeps a channel once it stops.
 */
export const leaseTtl = 30_000

/** What a lease of a {@link sqlitePool} uses of it. */
export type LeaseContext = {
  database: Database
  path: string
  statements: Statements
  /** The channel's row, read and checked (`undefined` if gone). */
  byId(channelId: string): StoredChannel | undefined
  /** Deletes the channel's row and ledger; the scope's next channel takes its place. */
  erase(channelId: string): void
  /** After a change of state: a usable channel of the scope takes the row other tools read. */
  reorder(channelId: string): void
  /** What ends each lease held through the pool, exactly (`releaseAll`, before the file closes). */
  held: Set<() => void>
}

/** The ledger figures a lease starts from. */
export type LeaseStart = {
  mark: bigint
  signed: bigint
  spent: bigint
  openingUntil: number | undefined
}

/**
 * Takes a lease on `stored` (its ledger row written now, inside the caller's transaction), and
 * `start`, to call once that transaction has committed: it renews the lease and writes the exact
 * ledger at exit, so that a lease whose transaction rolled back leaves no timer or exit hook.
 *
 * The row is this lease's while the ledger's `lease_id` is its own and the entry's
 * `cumulativeAmount` is the mark it last wrote: a tool that knows no leases (mppx, mpp-rs,
 * Foundry) writing the entry may have signed above the mark, so nothing more is signed here.
 *
 * @example
 * ```ts
 * const { lease, start } = transaction(database, () => leaseOn(context, stored, tally, ledger))
 * start()
 * ```
 */
export function leaseOn(
  context: LeaseContext,
  stored: StoredChannel,
  tally: () => LedgerTally,
  ledger: LeaseStart,
): { lease: ChannelLease; start(): void } {
  const { database, path, statements, held } = context
  const { channelId } = stored
  const leaseId = globalThis.crypto.randomUUID()
  const me = thisHolder()
  let ended = false
  let lost = false
  let openingUntil = ledger.openingUntil
  /** The figures last written, rewritten as they are when only the lease or the opening changes. */
  let last = ledger
  let renewal: ReturnType<typeof setInterval> | undefined
  let unregister = () => {}

  const leaseError = () => new ChannelStoreError({ reason: 'leaseLost', path, channelId })
  const writeLedger = (mark: bigint, signed: bigint, spent: bigint, holding: boolean) => {
    last = { mark, signed, spent, openingUntil }
    statements.upsertLedger.run(
      channelId,
      mark.toString(),
      signed.toString(),
      spent.toString(),
      holding ? leaseId : null,
      holding ? me.pid : null,
      holding ? me.host : null,
      holding ? (me.identity ?? null) : null,
      holding ? Date.now() + leaseTtl : null,
      openingUntil ?? null,
    )
  }
  /** Rewrites the entry with `changes` (its `cumulativeAmount` is the ledger's mark). */
  const writeEntry = (changes: Partial<ChannelEntry>, state?: string) => {
    const current = context.byId(channelId)
    if (!current) return
    const entry = { ...current.record.entry, ...changes }
    statements.entry.run(
      entryJson(entry),
      entry.cumulativeAmount.toString(),
      entry.deposit.toString(),
      state ?? current.state,
      Math.floor(Date.now() / 1000),
      channelId,
    )
  }
  /** The lease id on the channel now, and whether its entry is still as this lease wrote it. */
  const now = () => {
    const row = statements.holding.get(channelId) as
      | { lease_id: string | null; cumulative_amount: string | null }
      | undefined
    return { leaseId: row?.lease_id, untouched: amountOf(row?.cumulative_amount) === last.mark }
  }
  /** Throws `leaseLost` unless the lease is held (and, for `signing`, the entry untouched). */
  const check = (signing: boolean) => {
    const row = now()
    if (!ended && row.leaseId === leaseId && (row.untouched || !signing)) return
    lost = !ended
    throw leaseError()
  }
  const end = () => {
    ended = true
    clearInterval(renewal)
    unregister()
    held.delete(releaseNow)
  }
  /** Writes the ledger exactly (`mark` = `signed`) and ends the lease, if it is still ours. */
  const releaseNow = () => {
    if (ended) return
    transaction(database, () => {
      const row = now()
      // Another holder's by now: what it wrote stays.
      lost = row.leaseId !== leaseId
      if (lost) return
      const { signed, spent } = tally()
      writeLedger(signed, signed, spent, false)
      // A tool that knows no leases wrote the entry since: it may have signed up to what it
      // wrote, which is never lowered (the ledger, no longer its mark, is then not believed).
      const current = context.byId(channelId)?.record.entry.cumulativeAmount
      const foreign = !row.untouched && current !== undefined && current > signed
      writeEntry({ cumulativeAmount: foreign ? current : signed })
    })
    end()
  }
  writeLedger(ledger.mark, ledger.signed, ledger.spent, true)

  const lease: ChannelLease = {
    record: stored.record,
    get lost() {
      if (ended || lost) return lost
      const row = now()
      lost = row.leaseId !== leaseId || !row.untouched
      return lost
    },
    async raise(mark) {
      guarded(() => {
        check(true)
        const { signed, spent } = tally()
        writeLedger(mark, signed, spent, true)
        writeEntry({ cumulativeAmount: mark })
      })
      return mark
    },
    async update({ deposit, opened }) {
      guarded(() => {
        check(false)
        if (opened !== undefined && openingUntil !== undefined) {
          openingUntil = undefined
          writeLedger(last.mark, last.signed, last.spent, true)
        }
        writeEntry(
          {
            ...(deposit === undefined ? {} : { deposit }),
            ...(opened === undefined ? {} : { opened }),
          },
          opened === undefined ? undefined : opened ? states.active : states.gone,
        )
        if (opened !== undefined) context.reorder(channelId)
      })
    },
    async release() {
      try {
        releaseNow()
      } catch (error) {
        throw storeError(error, { path, channelId })
      }
    },
    async remove() {
      if (ended) return
      // Removed whatever another tool wrote to it since: it is closed, or never opened.
      guarded(() => {
        if (now().leaseId === leaseId) context.erase(channelId)
      })
      end()
    },
  }
  const guarded = (fn: () => void) => {
    try {
      transaction(database, fn)
    } catch (error) {
      throw storeError(error, { path, channelId })
    }
  }
  const start = () => {
    renewal = setInterval(() => {
      try {
        if (Number(statements.renew.run(Date.now() + leaseTtl, channelId, leaseId).changes) > 0)
          return
        lost = true
        clearInterval(renewal)
      } catch {
        // A busy or failing database: the next renewal tries again, well within the lease.
      }
    }, leaseTtl / 3)
    renewal.unref?.()
    unregister = onExit(releaseNow)
    held.add(releaseNow)
  }
  return { lease, start }
}

/** A stored amount (decimal, or hex as other tools may write it), `undefined` if none or bad. */
function amountOf(value: string | null | undefined) {
  if (value === null || value === undefined) return undefined
  try {
    return BigInt(value)
  } catch {
    return undefined
  }
}
