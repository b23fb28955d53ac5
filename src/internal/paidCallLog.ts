/** Stands for every call when a paid body cannot be read: all of them count as paid. */
const anyCall = '*'

/**
 * Remembers which JSON-RPC calls went out in paid HTTP requests, so that a call that then fails
 * can tell whether its attempt may have been paid for, and must then not be repeated.
 *
 * Calls are told apart by method and params only, so a call may take an identical call's payment
 * for its own. That errs the safe way: a wrong "paid" only skips a retry, a wrong "not paid" could
 * pay twice. For the same reason, records gone from the log count as "paid".
 */
export function createPaidCallLog({ capacity = 256 }: { capacity?: number } = {}) {
  let sequence = 0
  let evicted = 0
  const entries: { sequence: number; calls: ReadonlySet<string> }[] = []

  return {
    /** Grows with every paid request; read it before an attempt. */
    get sequence() {
      return sequence
    },

    /** Records the calls of a paid request body (one JSON-RPC message or a batch). */
    record(body: unknown) {
      entries.push({ sequence: ++sequence, calls: callsOf(body) })
      if (entries.length > capacity) evicted = entries.shift()?.sequence ?? evicted
    },

    /** Whether `call` may have gone out in a paid request after `start` (an earlier `sequence`). */
    paidSince(start: number, call: { method: string; params?: unknown }) {
      if (sequence === start) return false
      if (evicted > start) return true
      const key = keyOf(call)
      return entries.some(
        (entry) => entry.sequence > start && (entry.calls.has(key) || entry.calls.has(anyCall)),
      )
    },
  }
}

function keyOf({ method, params }: { method: string; params?: unknown }) {
  return JSON.stringify([method, params ?? null])
}

function callsOf(body: unknown): ReadonlySet<string> {
  try {
    const parsed = JSON.parse(String(body)) as
      | { method: string; params?: unknown }
      | { method: string; params?: unknown }[]
    return new Set((Array.isArray(parsed) ? parsed : [parsed]).map(keyOf))
  } catch {
    return new Set([anyCall])
  }
}
