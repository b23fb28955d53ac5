import { randomUUID } from 'node:crypto'
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * How long a lease lasts unless its holder renews it. A holder renews it every third of that while
 * it runs, so this only decides how soon a hung holder, or one on another host (whose pid cannot
 * be checked), loses it.
 */
const defaultTtl = 30_000

/** What a lock file holds: who holds the lease, and until when. */
type Holder = { pid: number; host: string; id: string; expiresAt: number }

/**
 * Runs `fn` holding the lock file `file`, which other processes taking the same file respect.
 * Waits while another live holder has it (polling with backoff), takes over a lock whose holder
 * died or let it expire, and removes it when `fn` settles. `signal` ends the wait; once `fn` runs,
 * the lease is held until it settles, renewed every `ttl / 3` ms (`ttl` is for tests).
 */
export async function withLockFile<value>(
  file: string,
  fn: () => Promise<value>,
  { signal, ttl = defaultTtl }: { signal?: AbortSignal | undefined; ttl?: number | undefined } = {},
): Promise<value> {
  await mkdir(dirname(file), { recursive: true })
  const holder = await acquire(file, ttl, signal)
  let renewing = Promise.resolve()
  const renewal = setInterval(() => {
    renewing = renewing.then(() => renew(file, holder, ttl)).catch(() => {})
  }, ttl / 3)
  renewal.unref()
  try {
    return await fn()
  } finally {
    clearInterval(renewal)
    // A renewal still writing could otherwise land in the next holder's lock file.
    await renewing
    // A failure here must not hide what `fn` did: a lock left behind expires within `ttl`.
    await release(file, holder, ttl).catch(() => {})
  }
}

/** Removes `file` if it is still `holder`'s (a holder that let it expire may have lost it). */
async function release(file: string, holder: Holder, ttl: number) {
  if ((await read(file, ttl))?.id === holder.id) await rm(file, { force: true })
}

async function acquire(file: string, ttl: number, signal: AbortSignal | undefined) {
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted()
    const holder = await create(file, ttl)
    if (holder) return holder
    const current = await read(file, ttl)
    // Gone since: released in between, so try again at once.
    if (!current) continue
    if (isStale(current) && (await breakStale(file, current, ttl))) continue
    // 5 ms doubling to 200 ms, with jitter so that waiters do not retry in lockstep.
    const backoff = Math.min(5 * 2 ** attempt, 200) * (0.5 + Math.random() / 2)
    await sleep(backoff, undefined, { signal }).catch((error: unknown) => {
      signal?.throwIfAborted()
      throw error
    })
  }
}

/** Creates `file` holding a new {@link Holder}, or `undefined` if it exists (O_EXCL). */
async function create(file: string, ttl: number): Promise<Holder | undefined> {
  const holder = {
    pid: process.pid,
    host: hostname(),
    id: randomUUID(),
    expiresAt: Date.now() + ttl,
  }
  try {
    await writeFile(file, JSON.stringify(holder), { flag: 'wx' })
    return holder
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined
    throw error
  }
}

/**
 * The holder of `file`, `undefined` when there is none. A file that does not parse is being
 * written (or its writer died right after creating it): it counts as held until its mtime is a
 * `ttl` old.
 */
async function read(file: string, ttl: number): Promise<Holder | undefined> {
  try {
    const [text, { mtimeMs }] = await Promise.all([readFile(file, 'utf8'), stat(file)])
    try {
      return JSON.parse(text) as Holder
    } catch {
      return { pid: 0, host: '', id: '', expiresAt: mtimeMs + ttl }
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

function isStale({ pid, host, expiresAt }: Holder) {
  if (expiresAt < Date.now()) return true
  if (host !== hostname() || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    // EPERM: alive, under another user.
    return (error as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/**
 * Removes the stale lock `seen`, unless it changed since it was read. Breaking is exclusive (a
 * second lock file), because "read, judge stale, remove" by two waiters at once could otherwise
 * remove the lock that the first of them has just taken. Returns whether to try again at once.
 */
async function breakStale(file: string, seen: Holder, ttl: number) {
  const breaker = `${file}.break`
  const breaking = await create(breaker, ttl)
  if (!breaking) {
    // Its holder died while breaking (a window of a few system calls).
    const other = await read(breaker, ttl)
    if (other && isStale(other)) await rm(breaker, { force: true })
    return false
  }
  try {
    const current = await read(file, ttl)
    if (current?.id === seen.id && isStale(current)) await rm(file, { force: true })
    return true
  } finally {
    await rm(breaker, { force: true })
  }
}

/** Extends the lease while `fn` runs; never recreates a lock file that is gone or not ours. */
async function renew(file: string, holder: Holder, ttl: number) {
  if ((await read(file, ttl))?.id !== holder.id) return
  const handle = await open(file, 'r+')
  try {
    await handle.truncate(0)
    await handle.write(JSON.stringify({ ...holder, expiresAt: Date.now() + ttl }), 0)
  } finally {
    await handle.close()
  }
}
