/** Stands for every call when a paid body cannot be read: all of them count as paid. */
const anyCall = '*'

/**
 * Remembers which JSON-RPC calls went out in paid HTTP requests, so that a call that then fails
 * can tell whether its attempt was paid for, and must not be retried.
 */
export function createPaidCallLog({ capacity = 256 }: { capacity?: number } = {}) {
  let sequence = 0
  const entries: { sequence: number; keys: ReadonlySet<string> }[] = []

  return {
    /** Grows with every paid request; read it before an attempt. */
    get sequence() {
      return sequence
    },

    /** Records the calls of a paid request body (one JSON-RPC message or a batch). */
    record(body: unknown) {
      entries.push({ sequence: ++sequence, keys: keysOf(body) })
      if (entries.length > capacity) entries.shift()
    },

    /** Whether `call` went out in a paid request after `start` (a `sequence` read earlier). */
    paidSince(start: number, call: { method: string; params?: unknown }) {
      if (sequence === start) return false
      const key = keyOf(call)
      return entries.some(
        (entry) => entry.sequence > start && (entry.keys.has(key) || entry.keys.has(anyCall)),
      )
    },
  }
}

function keyOf({ method, params }: { method: string; params?: unknown }) {
  return JSON.stringify([method, params ?? null])
}

function keysOf(body: unknown): ReadonlySet<string> {
  try {
    const parsed = JSON.parse(String(body)) as
      | { method: string; params?: unknown }
      | { method: string; params?: unknown }[]
    return new Set((Array.isArray(parsed) ? parsed : [parsed]).map(keyOf))
  } catch {
    return new Set([anyCall])
  }
}
