import type { ChannelEntry, ChannelLease, LedgerTally } from '../../stores/ChannelStore.js'
import { entryJson } from '../../stores/entryJson.js'
import { ChannelStoreError } from '../../stores/errors.js'
import { type Holder, onExit, thisHolder } from '../holder.js'
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
 * One lease's state: what the functions below share, read and change in its place, so that each
 * of them sees what the others wrote.
 */
type LeaseState = {
  context: LeaseContext
  stored: StoredChannel
  tally: () => LedgerTally
  channelId: string
  leaseId: string
  /** This process, as the ledger names the lease's holder. */
  me: Holder
  /** Released or removed here: nothing more is written. */
  ended: boolean
  /** Found another holder's, or its entry rewritten by another tool: nothing more is signed. */
  lost: boolean
  openingUntil: number | undefined
  /** The figures last written, rewritten as they are when only the lease or the opening changes. */
  last: LeaseStart
  renewal: ReturnType<typeof setInterval> | undefined
  unregister: () => void
  /** {@link releaseExactly} of this lease, one function: what the exit hook and `held` keep. */
  releaseNow: () => void
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
  const { channelId } = stored
  const leaseId = globalThis.crypto.randomUUID()
  const me = thisHolder()
  const lease: LeaseState = {
    context,
    stored,
    tally,
    channelId,
    leaseId,
    me,
    ended: false,
    lost: false,
    openingUntil: ledger.openingUntil,
    last: ledger,
    renewal: undefined,
    unregister: () => {},
    releaseNow: () => releaseExactly(lease),
  }
  writeLedger(lease, ledger.mark, ledger.signed, ledger.spent, true)
  return { lease: channelLease(lease), start: () => startRenewal(lease) }
}

/**
 * The {@link ChannelLease} a caller holds: each write is one transaction that first checks the
 * lease is still this one's, so that a holder that lost it writes nothing more.
 */
function channelLease(lease: LeaseState): ChannelLease {
  const { context, tally, channelId } = lease
  const { path } = context
  return {
    record: lease.stored.record,
    get lost() {
      if (lease.ended || lease.lost) return lease.lost
      const row = now(lease)
      lease.lost = row.leaseId !== lease.leaseId || !row.untouched
      return lease.lost
    },
    async raise(mark) {
      guarded(lease, () => {
        check(lease, true)
        const { signed, spent } = tally()
        writeLedger(lease, mark, signed, spent, true)
        writeEntry(lease, { cumulativeAmount: mark })
      })
      return mark
    },
    async update({ deposit, opened }) {
      guarded(lease, () => {
        check(lease, false)
        if (opened !== undefined && lease.openingUntil !== undefined) {
          lease.openingUntil = undefined
          const { last } = lease
          writeLedger(lease, last.mark, last.signed, last.spent, true)
        }
        writeEntry(
          lease,
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
        releaseExactly(lease)
      } catch (error) {
        throw storeError(error, { path, channelId })
      }
    },
    async remove() {
      if (lease.ended) return
      // Removed whatever another tool wrote to it since: it is closed, or never opened.
      guarded(lease, () => {
        if (now(lease).leaseId === lease.leaseId) context.erase(channelId)
      })
      end(lease)
    },
  }
}

/**
 * Starts what a committed lease needs: its renewal every third of {@link leaseTtl}, and the
 * exact ledger written at exit or by `releaseAll`.
 */
function startRenewal(lease: LeaseState) {
  const { statements, held } = lease.context
  const { channelId, leaseId } = lease
  lease.renewal = setInterval(() => {
    try {
      if (Number(statements.renew.run(Date.now() + leaseTtl, channelId, leaseId).changes) > 0)
        return
      lease.lost = true
      clearInterval(lease.renewal)
    } catch {
      // A busy or failing database: the next renewal tries again, well within the lease.
    }
  }, leaseTtl / 3)
  lease.renewal.unref?.()
  lease.unregister = onExit(lease.releaseNow)
  held.add(lease.releaseNow)
}

/** Writes the ledger row as this lease (`holding`) or as free, keeping {@link LeaseState.last}. */
function writeLedger(
  lease: LeaseState,
  mark: bigint,
  signed: bigint,
  spent: bigint,
  holding: boolean,
) {
  const { channelId, leaseId, me, openingUntil } = lease
  lease.last = { mark, signed, spent, openingUntil }
  lease.context.statements.upsertLedger.run(
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
function writeEntry(lease: LeaseState, changes: Partial<ChannelEntry>, state?: string) {
  const { context, channelId } = lease
  const current = context.byId(channelId)
  if (!current) return
  const entry = { ...current.record.entry, ...changes }
  context.statements.entry.run(
    entryJson(entry),
    entry.cumulativeAmount.toString(),
    entry.deposit.toString(),
    state ?? current.state,
    Math.floor(Date.now() / 1000),
    channelId,
  )
}

/** The lease id on the channel now, and whether its entry is still as this lease wrote it. */
function now(lease: LeaseState) {
  const row = lease.context.statements.holding.get(lease.channelId) as
    | { lease_id: string | null; cumulative_amount: string | null }
    | undefined
  return { leaseId: row?.lease_id, untouched: amountOf(row?.cumulative_amount) === lease.last.mark }
}

/** Throws `leaseLost` unless the lease is held (and, for `signing`, the entry untouched). */
function check(lease: LeaseState, signing: boolean) {
  const row = now(lease)
  if (!lease.ended && row.leaseId === lease.leaseId && (row.untouched || !signing)) return
  lease.lost = !lease.ended
  throw new ChannelStoreError({
    reason: 'leaseLost',
    path: lease.context.path,
    channelId: lease.channelId,
  })
}

/** Ends the lease here: no more renewals, and nothing left to write at exit. */
function end(lease: LeaseState) {
  lease.ended = true
  clearInterval(lease.renewal)
  lease.unregister()
  lease.context.held.delete(lease.releaseNow)
}

/** Writes the ledger exactly (`mark` = `signed`) and ends the lease, if it is still ours. */
function releaseExactly(lease: LeaseState) {
  if (lease.ended) return
  const { context, channelId, tally } = lease
  transaction(context.database, () => {
    const row = now(lease)
    // Another holder's by now: what it wrote stays.
    lease.lost = row.leaseId !== lease.leaseId
    if (lease.lost) return
    const { signed, spent } = tally()
    writeLedger(lease, signed, signed, spent, false)
    // A tool that knows no leases wrote the entry since: it may have signed up to what it
    // wrote, which is never lowered (the ledger, no longer its mark, is then not believed).
    const current = context.byId(channelId)?.record.entry.cumulativeAmount
    const foreign = !row.untouched && current !== undefined && current > signed
    writeEntry(lease, { cumulativeAmount: foreign ? current : signed })
  })
  end(lease)
}

/** Runs `fn` in one transaction, its failure a store error naming the file and the channel. */
function guarded(lease: LeaseState, fn: () => void) {
  const { context, channelId } = lease
  try {
    transaction(context.database, fn)
  } catch (error) {
    throw storeError(error, { path: context.path, channelId })
  }
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
