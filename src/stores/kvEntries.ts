import { entryKey } from 'mppx/client'
import type { ChannelEntry, ChannelLedger, ChannelRecord } from './ChannelStore.js'
import { entryJson, entryOf } from './entryJson.js'
import { ChannelStoreError } from './errors.js'

/** A synchronous string key-value backend: a `Map`, a Web Storage. */
export type Kv = {
  get(name: string): string | undefined
  set(name: string, value: string): void
  delete(name: string): void
  /** Every name, for `list()`; absent if the backend cannot enumerate. */
  names?(): string[]
}

/** What every name a channel store writes starts with, so that it shares a backend safely. */
export const prefix = 'viem-mpp:'
/** mppx's JSON store writes each entry under this prefix. */
const entryPrefix = 'chan:'

/** The stored form of a ledger (bigints as decimal strings). */
export type StoredLedger = {
  mark: string
  signed: string
  spent: string
  lease?: { id: string; pid?: number; host?: string; expiresAt: number } | undefined
  openingUntil?: number | undefined
}

/**
 * The names a {@link Kv} keeps a channel store's entries, pools, ledgers and leases under, in one
 * place so that every reader and writer agrees on them (and mppx's JSON store finds its entries).
 *
 * @example
 * ```ts
 * kv.get(names.ledger(channelId))
 * ```
 */
export const names = {
  canonical: (origin: string, key: string) => `${prefix}${origin}:${entryPrefix}${key}`,
  pooled: (origin: string, key: string, id: string) => `${prefix}${origin}:pool:${key}:${id}`,
  index: (origin: string, key: string) => `${prefix}${origin}:index:${key}`,
  ledger: (id: string) => `${prefix}ledger:${id}`,
  lock: (id: string) => `${prefix}lease:${id}`,
}

/**
 * The value under `name`, parsed: a value that does not parse is `corrupt`, so that a damaged
 * backend is reported rather than taken for an empty one.
 */
function read<value>(kv: Kv, name: string, parse: (text: string) => value): value | undefined {
  const text = kv.get(name)
  if (text === undefined) return undefined
  try {
    return parse(text)
  } catch (error) {
    throw new ChannelStoreError({ reason: 'corrupt', cause: error })
  }
}

/**
 * The channel entry stored under `name`, checked as mppx's JSON store would read it.
 *
 * @example
 * ```ts
 * const first = entryAt(kv, names.canonical(origin, key))
 * ```
 */
export function entryAt(kv: Kv, name: string): ChannelEntry | undefined {
  return read(kv, name, (text) => entryOf(JSON.parse(text)))
}

/** The ids of a scope's pooled channels, in the order they joined it (none without an index). */
function indexOf(kv: Kv, origin: string, key: string): string[] {
  return read(kv, names.index(origin, key), (text) => JSON.parse(text) as string[]) ?? []
}

/** Writes a scope's pool index, dropping it once empty so that no stale name is left behind. */
function setIndex(kv: Kv, origin: string, key: string, ids: string[]) {
  if (ids.length === 0) kv.delete(names.index(origin, key))
  else kv.set(names.index(origin, key), JSON.stringify(ids))
}

/**
 * The stored ledger of the channel `id`, as written (not yet checked against its entry).
 *
 * @example
 * ```ts
 * const leaseId = ledgerOf(kv, id)?.lease?.id
 * ```
 */
export function ledgerOf(kv: Kv, id: string): StoredLedger | undefined {
  return read(kv, names.ledger(id), (text) => JSON.parse(text) as StoredLedger)
}

/**
 * Where the channel `id` of a scope is kept, if it is.
 *
 * @example
 * ```ts
 * const name = locate(kv, origin, key, id)
 * ```
 */
export function locate(kv: Kv, origin: string, key: string, id: string): string | undefined {
  const canonical = entryAt(kv, names.canonical(origin, key))
  if (canonical && sameId(canonical.channelId, id)) return names.canonical(origin, key)
  return indexOf(kv, origin, key).includes(id) ? names.pooled(origin, key, id) : undefined
}

/**
 * Writes a channel new to the scope: as its first entry if it has none, else in its pool.
 *
 * @example
 * ```ts
 * insert(kv, originOf(origin), entry)
 * ```
 */
export function insert(kv: Kv, origin: string, entry: ChannelEntry): void {
  const key = entryKey(entry)
  const id = entry.channelId.toLowerCase()
  if (!kv.get(names.canonical(origin, key))) {
    kv.set(names.canonical(origin, key), entryJson(entry))
    return
  }
  kv.set(names.pooled(origin, key, id), entryJson(entry))
  setIndex(kv, origin, key, [...indexOf(kv, origin, key).filter((other) => other !== id), id])
}

/**
 * The first entry of a scope is what mppx's store reads: a usable channel takes its place from
 * one that is not (opening, or set aside as unknown to the server), which moves to the pool.
 *
 * @example
 * ```ts
 * if (opened !== undefined) reorder(kv, origin, key)
 * ```
 */
export function reorder(kv: Kv, origin: string, key: string): void {
  const first = entryAt(kv, names.canonical(origin, key))
  if (!first || first.opened) return
  const ids = indexOf(kv, origin, key)
  const usable = ids.find((id) => entryAt(kv, names.pooled(origin, key, id))?.opened)
  if (usable === undefined) return
  const firstId = first.channelId.toLowerCase()
  kv.set(names.canonical(origin, key), kv.get(names.pooled(origin, key, usable)) as string)
  kv.delete(names.pooled(origin, key, usable))
  kv.set(names.pooled(origin, key, firstId), entryJson(first))
  setIndex(kv, origin, key, [...ids.filter((id) => id !== usable), firstId])
}

/**
 * Removes the channel `id` of a scope; a pool entry takes the first entry's place.
 *
 * @example
 * ```ts
 * erase(kv, origin, key, id)
 * ```
 */
export function erase(kv: Kv, origin: string, key: string, id: string): void {
  const index = indexOf(kv, origin, key)
  if (index.includes(id)) {
    kv.delete(names.pooled(origin, key, id))
    setIndex(
      kv,
      origin,
      key,
      index.filter((other) => other !== id),
    )
    return
  }
  const canonical = entryAt(kv, names.canonical(origin, key))
  if (!canonical || !sameId(canonical.channelId, id)) return
  const [next, ...rest] = index
  if (next === undefined) kv.delete(names.canonical(origin, key))
  else {
    kv.set(names.canonical(origin, key), kv.get(names.pooled(origin, key, next)) as string)
    kv.delete(names.pooled(origin, key, next))
    setIndex(kv, origin, key, rest)
  }
}

/**
 * The records of a scope's channels, first entry first, each with its ledger as far as it is
 * believed; `held` (the lock names held now) says which leases are live.
 *
 * @example
 * ```ts
 * const records = await recordsOf(kv, origin, key, await locks.held())
 * ```
 */
export async function recordsOf(
  kv: Kv,
  origin: string,
  key: string,
  held: ReadonlySet<string>,
): Promise<ChannelRecord[]> {
  const records: ChannelRecord[] = []
  const ids = indexOf(kv, origin, key)
  const named = [names.canonical(origin, key), ...ids.map((id) => names.pooled(origin, key, id))]
  for (const name of named) {
    const entry = entryAt(kv, name)
    if (!entry) continue
    const id = entry.channelId.toLowerCase()
    records.push({
      origin: origin || undefined,
      key,
      entry,
      ledger: ledgerRecord(ledgerOf(kv, id), entry, held.has(names.lock(id))),
    })
  }
  return records
}

/**
 * Every scope that has a first entry: `viem-mpp:<origin>:chan:<key>` (an origin holds no `:chan:`).
 *
 * @example
 * ```ts
 * for (const { origin, key } of scopesIn(kv.names?.() ?? [])) records.push(...(await recordsOf(kv, origin, key, held)))
 * ```
 */
export function scopesIn(kvNames: readonly string[]): { origin: string; key: string }[] {
  const scopes: { origin: string; key: string }[] = []
  for (const name of kvNames) {
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

/**
 * A ledger for a channel no ledger-keeping store wrote: the mark is all that is known.
 *
 * @example
 * ```ts
 * const stored = ledgerOf(kv, id) ?? fromMark(entry.cumulativeAmount)
 * ```
 */
export function fromMark(mark: bigint): StoredLedger {
  return { mark: String(mark), signed: '0', spent: '0' }
}

/** Channel ids compare case-blind: other tools may write them checksummed or lowercase. */
function sameId(a: string, b: string) {
  return a.toLowerCase() === b.toLowerCase()
}
