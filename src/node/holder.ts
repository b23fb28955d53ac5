import { readFileSync, readlinkSync } from 'node:fs'
import { hostname } from 'node:os'

/**
 * Who holds a lease, as a lease row records it: the process id, the host name, and (on Linux) the
 * process's identity `<boot id>:<pid namespace>:<start time>`, which tells a live holder from a
 * later process that reused its pid.
 */
export type Holder = { pid: number; host: string; identity: string | undefined }

let self: Holder | undefined

/**
 * This process as a lease holder (read once: none of it changes while the process runs).
 *
 * @example
 * ```ts
 * const { pid, host, identity } = thisHolder()
 * ```
 */
export function thisHolder(): Holder {
  self ??= { pid: process.pid, host: hostname(), identity: identityOf(process.pid) }
  return self
}

/**
 * Whether the holder of a lease is alive now. On this host its process is checked, whatever the
 * lease's expiry says: a live holder is never taken over because a clock jumped, and a dead one
 * is free at once. A holder whose pid cannot be checked (another host, another pid namespace or
 * boot of a host of the same name) is live until its lease expires: it renews it while it runs.
 *
 * @example
 * ```ts
 * if (!isLive({ pid, host, identity, expiresAt })) takeOver()
 * ```
 */
export function isLive(
  { pid, host, identity, expiresAt }: Partial<Holder> & { expiresAt: number },
  now: number = Date.now(),
): boolean {
  const me = thisHolder()
  if (host !== me.host || pid === undefined) return expiresAt > now
  if (me.identity === undefined || identity === undefined) return pidAlive(pid)
  // The same boot and pid namespace: the pid is ours to look up, and its start time tells a
  // process that reused the pid from the holder.
  if (prefixOf(identity) !== prefixOf(me.identity)) return expiresAt > now
  return identityOf(pid) === identity
}

/** `<boot id>:<pid namespace>`, the part of an identity that says where its pid is valid. */
function prefixOf(identity: string) {
  return identity.slice(0, identity.lastIndexOf(':'))
}

/**
 * The identity of process `pid` on Linux (`undefined` elsewhere, or if it does not run): its start
 * time in clock ticks since boot (field 22 of `/proc/<pid>/stat`), after the boot id and this
 * process's pid namespace, which say what the pid and the start time are relative to.
 */
function identityOf(pid: number): string | undefined {
  if (process.platform !== 'linux') return undefined
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    // Field 2, the command, is in parentheses and may hold spaces and parentheses itself.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const start = fields[22 - 3]
    return start === undefined ? undefined : `${namespace()}:${start}`
  } catch {
    return undefined
  }
}

let where: string | undefined

/** This process's boot id and pid namespace, read once. */
function namespace() {
  where ??= `${readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim()}:${readlinkSync('/proc/self/ns/pid').replace(/\D/g, '')}`
  return where
}

/** Whether `pid` runs (`EPERM`: it does, under another user), where its identity is unknown. */
function pidAlive(pid: number) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const atExit = new Set<() => void>()

/** Runs every registered writer: each in turn, so that one failing does not stop the others. */
function runAtExit() {
  for (const write of [...atExit])
    try {
      write()
    } catch {
      // Nothing can be reported at exit; the lease left behind is free once this process is gone.
    }
}

/**
 * Runs `write` (synchronously) when the process exits normally, until the returned function is
 * called. The `exit` listener is installed only while something is registered, so that a process
 * with no lease has none; no signal handler is installed (a signal ends the process as it would).
 *
 * @example
 * ```ts
 * const unregister = onExit(() => releaseAll())
 * ```
 */
export function onExit(write: () => void): () => void {
  if (atExit.size === 0) process.on('exit', runAtExit)
  atExit.add(write)
  return () => {
    if (atExit.delete(write) && atExit.size === 0) process.off('exit', runAtExit)
  }
}
