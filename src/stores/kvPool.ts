import { createJsonChannelStore, entryKey } from 'mppx/client'
import type {
  ChannelEntry,
  ChannelLease,
  ChannelLedger,
  ChannelPool,
  ChannelRecord,
  ChannelStore,
  LedgerTally,
} from './ChannelStore.js'
import { entryJson, entryOf } from './entryJson.js'
import { ChannelStoreError } from './errors.js'
import { originOf } from './origin.js'

/** A synchronous string key-value backend: a `Map`, a Web Storage. */
export type Kv = {
  get(name: string): string | undefined
  set(name: string, value: string): void
  delete(name: string): void
  /** Every name, for `list()`; absent if the backend cannot enumerate. */
  names?(): string[]
}

/** Leases held in one JS realm, or across a browser's tabs (Web Locks). */
export type Locks = {
  /** Takes `name` if nobody holds it: the function that lets it go, else `undefined`. */
  take(name: string): Promise<(() => void) | undefined>
  /** The names held now, by anyone. */
  held(): Promise<ReadonlySet<string>>
}

/** Leases of one JS realm. */
export function realmLocks(): Locks {
  const held = new Set<string>()
  return {
    async take(name) {
      if (held.has(name)) return undefined
      held.add(name)
      return () => held.delete(name)
    },
    held: async () => held,
  }
}

const prefix = 'viem-mpp:'
/** mppx's JSON store writes each entry under this prefix. */
const entryPrefix = 'chan:'

/** The stored form of a ledger (bigints as decimal strings). */
type StoredLedger = {
  mark: string
  signed: string
  spent: string
  lease?: { id: string; pid?: number; host?: string; expiresAt: number } | undefined
  openingUntil?: number | undefined
}

/**
 * A {@link ChannelStore} over a synchronous key-value backend, with its {@link ChannelPool}: the
 * first channel of a scope is mppx's JSON entry `viem-mpp:<origin>:chan:<key>` (what mppx's JSON
 * store reads), further ones `viem-mpp:<origin>:pool:<key>:<channelId>` listed in
 * `viem-mpp:<origin>:index:<key>`, and each channel's ledger is `viem-mpp:ledger:<channelId>`.
 * Leases are `locks`; `onExit` registers what to run when the realm ends (a page's `pagehide`),
 * which writes the exact ledgers of the leases still held.
 *
 * @example
 * ```ts
 * const items = new Map<string, string>()
 * const store = kvChannelStore({
 *   kv: { get: (name) => items.get(name), set: (name, value) => void items.set(name, value), delete: (name) => void items.delete(name) },
 *   locks: realmLocks(),
 * })
 * ```
 */
export function kvChannelStore({
  kv,
  locks,
  onExit,
}: {
  kv: Kv
  locks: Locks
  onExit?: ((write: () => void) => void) | undefined
}): ChannelStore & Required<Pick<ChannelStore, 'forOrigin' | 'pool'>> {
  const json = (namespace: string) =>
    createJsonChannelStore({
      get: (name) => kv.get(`${prefix}${namespace}:${name}`),
      set: (name, value) => kv.set(`${prefix}${namespace}:${name}`, value),
      delete: (name) => kv.delete(`${prefix}${namespace}:${name}`),
    })
  const names = {
    canonical: (origin: string, key: string) => `${prefix}${origin}:${entryPrefix}${key}`,
    pooled: (origin: string, key: string, id: string) => `${prefix}${origin}:pool:${key}:${id}`,
    index: (origin: string, key: string) => `${prefix}${origin}:index:${key}`,
    ledger: (id: string) => `${prefix}ledger:${id}`,
    lock: (id: string) => `${prefix}lease:${id}`,
  }
  const read = <value>(name: string, parse: (text: string) => value): value | undefined => {
    const text = kv.get(name)
    if (text === undefined) return undefined
    try {
      return parse(text)
    } catch (error) {
      throw new ChannelStoreError({ reason: 'corrupt', cause: error })
    }
  }
  const entryAt = (name: string) => read(name, (text) => entryOf(JSON.parse(text)))
  const indexOf = (origin: string, key: string) =>
    read(names.index(origin, key), (text) => JSON.parse(text) as string[]) ?? []
  const setIndex = (origin: string, key: string, ids: string[]) => {
    if (ids.length === 0) kv.delete(names.index(origin, key))
    else kv.set(names.index(origin, key), JSON.stringify(ids))
  }
  const ledgerOf = (id: string) =>
    read(names.ledger(id), (text) => JSON.parse(text) as StoredLedger)

  /** Where the channel `id` of a scope is kept, if it is. */
  const locate = (origin: string, key: string, id: string) => {
    const canonical = entryAt(names.canonical(origin, key))
    if (canonical && sameId(canonical.channelId, id)) return names.canonical(origin, key)
    return indexOf(origin, key).includes(id) ? names.pooled(origin, key, id) : undefined
  }
  /** Writes a channel new to the scope: as its first entry if it has none, else in its pool. */
  const insert = (origin: string, entry: ChannelEntry) => {
    const key = entryKey(entry)
    const id = entry.channelId.toLowerCase()
    if (!kv.get(names.canonical(origin, key))) {
      kv.set(names.canonical(origin, key), entryJson(entry))
      return
    }
    kv.set(names.pooled(origin, key, id), entryJson(entry))
    setIndex(origin, key, [...indexOf(origin, key).filter((other) => other !== id), id])
  }
  /**
   * The first entry of a scope is what mppx's store reads: a usable channel takes its place from
   * one that is not (opening, or set aside as unknown to the server), which moves to the pool.
   */
  const reorder = (origin: string, key: string) => {
    const first = entryAt(names.canonical(origin, key))
    if (!first || first.opened) return
    const ids = indexOf(origin, key)
    const usable = ids.find((id) => entryAt(names.pooled(origin, key, id))?.opened)
    if (usable === undefined) return
    const firstId = first.channelId.toLowerCase()
    kv.set(names.canonical(origin, key), kv.get(names.pooled(origin, key, usable)) as string)
    kv.delete(names.pooled(origin, key, usable))
    kv.set(names.pooled(origin, key, firstId), entryJson(first))
    setIndex(origin, key, [...ids.filter((id) => id !== usable), firstId])
  }
  /** Removes the channel `id` of a scope; a pool entry takes the first entry's place. */
  const erase = (origin: string, key: string, id: string) => {
    const index = indexOf(origin, key)
    if (index.includes(id)) {
      kv.delete(names.pooled(origin, key, id))
      setIndex(
        origin,
        key,
        index.filter((other) => other !== id),
      )
      return
    }
    const canonical = entryAt(names.canonical(origin, key))
    if (!canonical || !sameId(canonical.channelId, id)) return
    const [next, ...rest] = index
    if (next === undefined) kv.delete(names.canonical(origin, key))
    else {
      kv.set(names.canonical(origin, key), kv.get(names.pooled(origin, key, next)) as string)
      kv.delete(names.pooled(origin, key, next))
      setIndex(origin, key, rest)
    }
  }

  const recordsOf = async (origin: string, key: string, held: ReadonlySet<string>) => {
    const records: ChannelRecord[] = []
    const ids = indexOf(origin, key)
    const named = [names.canonical(origin, key), ...ids.map((id) => names.pooled(origin, key, id))]
    for (const name of named) {
      const entry = entryAt(name)
      if (!entry) continue
      const id = entry.channelId.toLowerCase()
      records.push({
        origin: origin || undefined,
        key,
        entry,
        ledger: ledgerRecord(ledgerOf(id), entry, held.has(names.lock(id))),
      })
    }
    return records
  }

  const live = new Set<() => void>()
  onExit?.(() => {
    for (const write of [...live]) write()
  })

  const lease = (
    release: () => void,
    record: ChannelRecord,
    { origin, tally }: { origin: string; tally: () => LedgerTally },
    openingUntil: number | undefined,
  ): ChannelLease => {
    const { key } = record
    const id = record.entry.channelId.toLowerCase()
    const leaseId = randomId()
    let ended = false
    let stored: StoredLedger = {
      ...(ledgerOf(id) ?? fromMark(record.entry.cumulativeAmount)),
      lease: { id: leaseId, expiresAt: Number.MAX_SAFE_INTEGER },
      openingUntil,
    }
    const at = () => locate(origin, key, id)
    const writeEntry = (changes: Partial<ChannelEntry>) => {
      const name = at()
      const entry = name && entryAt(name)
      if (name && entry) kv.set(name, entryJson({ ...entry, ...changes }))
    }
    const ours = () => {
      if (ended || ledgerOf(id)?.lease?.id !== leaseId)
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
        return !ended && ledgerOf(id)?.lease?.id !== leaseId
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
        if (opened !== undefined) reorder(origin, key)
      },
      async release() {
        exit()
      },
      async remove() {
        if (ended) return
        erase(origin, key, id)
        kv.delete(names.ledger(id))
        end()
      },
    }
  }

  const pool: ChannelPool = {
    async free(origin, key) {
      const at = originOf(origin)
      const held = await locks.held()
      return [...(await recordsOf(at, key, held)), ...(await recordsOf('', key, held))].filter(
        ({ entry, ledger }) =>
          (entry.opened || ledger?.openingUntil !== undefined) && !ledger?.lease?.live,
      )
    },
    async claim(record, options) {
      const id = record.entry.channelId.toLowerCase()
      const from = record.origin ?? ''
      const release = await locks.take(names.lock(id))
      if (!release) return undefined
      const name = locate(from, record.key, id)
      const entry = name && entryAt(name)
      if (!name || !entry) {
        release()
        return undefined
      }
      const origin = originOf(options.origin)
      if (from !== origin) {
        erase(from, record.key, id)
        insert(origin, entry)
      }
      return lease(release, record, { ...options, origin }, record.ledger?.openingUntil)
    },
    async add(entry, { openingUntil, ...options }) {
      const id = entry.channelId.toLowerCase()
      const release = await locks.take(names.lock(id))
      if (!release) throw new ChannelStoreError({ reason: 'leaseLost', channelId: id })
      const origin = originOf(options.origin)
      insert(origin, entry)
      const record: ChannelRecord = { origin, key: entryKey(entry), entry, ledger: undefined }
      return lease(release, record, { ...options, origin }, openingUntil)
    },
    async put(entry, { origin }) {
      const at = origin === undefined ? '' : originOf(origin)
      const key = entryKey(entry)
      if (locate(at, key, entry.channelId.toLowerCase())) return false
      insert(at, entry)
      return true
    },
  }

  return {
    ...json(''),
    forOrigin: (origin) => json(originOf(origin)),
    pool,
    ...(kv.names
      ? {
          async list() {
            const held = await locks.held()
            const records: ChannelRecord[] = []
            for (const { origin, key } of scopesIn(kv.names?.() ?? []))
              records.push(...(await recordsOf(origin, key, held)))
            return records
          },
        }
      : {}),
  }
}

/** Every scope that has a first entry: `viem-mpp:<origin>:chan:<key>` (an origin holds no `:chan:`). */
function scopesIn(names: readonly string[]) {
  const scopes: { origin: string; key: string }[] = []
  for (const name of names) {
    const at = name.indexOf(`:${entryPrefix}`, prefix.length - 1)
    if (!name.startsWith(prefix) || at < 0) continue
    scopes.push({
      origin: name.slice(prefix.length, at),
      key: name.slice(at + 1 + entryPrefix.length),
    })
  }
  return scopes
}

/**
 * The channel's ledger, believed only while its mark is the entry's `cumulativeAmount` (every write
 * of the pool keeps them equal): a tool that knows no ledger, writing the entry since, may have
 * signed above it, so the ledger is then unknown, as for an entry with none.
 */
function ledgerRecord(
  stored: StoredLedger | undefined,
  entry: ChannelEntry,
  live: boolean,
): ChannelLedger | undefined {
  if (!stored || BigInt(stored.mark) !== entry.cumulativeAmount) return undefined
  return {
    mark: BigInt(stored.mark),
    signed: BigInt(stored.signed),
    spent: BigInt(stored.spent),
    lease: stored.lease && {
      id: stored.lease.id,
      pid: stored.lease.pid,
      host: stored.lease.host,
      expiresAt: stored.lease.expiresAt,
      live,
    },
    openingUntil: stored.openingUntil,
  }
}

/** A ledger for a channel no ledger-keeping store wrote: the mark is all that is known. */
function fromMark(mark: bigint): StoredLedger {
  return { mark: String(mark), signed: '0', spent: '0' }
}

function sameId(a: string, b: string) {
  return a.toLowerCase() === b.toLowerCase()
}

function randomId() {
  return globalThis.crypto.randomUUID()
}
