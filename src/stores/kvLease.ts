import type { ChannelEntry, ChannelLease, ChannelRecord, LedgerTally } from './ChannelStore.js'
import { entryJson } from './entryJson.js'
import { ChannelStoreError } from './errors.js'
import {
  entryAt,
  erase,
  fromMark,
  type Kv,
  ledgerOf,
  locate,
  names,
  reorder,
  type StoredLedger,
} from './kvEntries.js'

/** What the leases of one key-value channel store share. */
export type KvLeaseContext = {
  kv: Kv
  /** What writes the exact ledger of each lease still held, for when the realm ends. */
  live: Set<() => void>
}

/**
 * A lease on a channel taken through `release` (the lock, held): its ledger carries the lease's
 * id, so that a lease another realm took over since writes nothing more, and it is in `live`
 * until it ends, so that the realm's end writes its exact ledger.
 *
 * @example
 * ```ts
 * const release = await locks.take(names.lock(id))
 * if (release) return kvLease({ kv, live }, { release, record, origin, tally, openingUntil })
 * ```
 */
export function kvLease(
  { kv, live }: KvLeaseContext,
  {
    release,
    record,
    origin,
    tally,
    openingUntil,
  }: {
    release: () => void
    record: ChannelRecord
    origin: string
    tally: () => LedgerTally
    openingUntil: number | undefined
  },
): ChannelLease {
  const { key } = record
  const id = record.entry.channelId.toLowerCase()
  const leaseId = randomId()
  let ended = false
  let stored: StoredLedger = {
    ...(ledgerOf(kv, id) ?? fromMark(record.entry.cumulativeAmount)),
    lease: { id: leaseId, expiresAt: Number.MAX_SAFE_INTEGER },
    openingUntil,
  }
  const at = () => locate(kv, origin, key, id)
  const writeEntry = (changes: Partial<ChannelEntry>) => {
    const name = at()
    const entry = name && entryAt(kv, name)
    if (name && entry) kv.set(name, entryJson({ ...entry, ...changes }))
  }
  const ours = () => {
    if (ended || ledgerOf(kv, id)?.lease?.id !== leaseId)
      throw new ChannelStoreError({ reason: 'leaseLost', channelId: id })
  }
  const writeLedger = (next: StoredLedger) => {
    stored = next
    kv.set(names.ledger(id), JSON.stringify(next))
  }
  const end = () => {
    ended = true
    live.delete(exit)
    release()
  }
  const exit = () => {
    if (ended) return
    const { signed, spent } = tally()
    writeLedger({ mark: String(signed), signed: String(signed), spent: String(spent) })
    writeEntry({ cumulativeAmount: signed })
    end()
  }
  writeLedger(stored)
  live.add(exit)
  return {
    record,
    get lost() {
      return !ended && ledgerOf(kv, id)?.lease?.id !== leaseId
    },
    async raise(mark) {
      ours()
      const { signed, spent } = tally()
      writeLedger({ ...stored, mark: String(mark), signed: String(signed), spent: String(spent) })
      writeEntry({ cumulativeAmount: mark })
      return mark
    },
    async update({ deposit, opened }) {
      ours()
      if (opened !== undefined) writeLedger({ ...stored, openingUntil: undefined })
      writeEntry({
        ...(deposit === undefined ? {} : { deposit }),
        ...(opened === undefined ? {} : { opened }),
      })
      if (opened !== undefined) reorder(kv, origin, key)
    },
    async release() {
      exit()
    },
    async remove() {
      if (ended) return
      erase(kv, origin, key, id)
      kv.delete(names.ledger(id))
      end()
    },
  }
}

/** A lease's own id, unguessable, so that no other lease (in any realm) can take it for its own. */
function randomId() {
  return globalThis.crypto.randomUUID()
}
