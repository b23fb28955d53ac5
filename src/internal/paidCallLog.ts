/** Stands for every call when a paid body cannot be read: all of them count as paid. */
const anyCall = '*'

/**
 * Remembers which JSON-RPC calls went out in paid HTTP requests, so that a call that then fails
 * can tell whether its attempt was paid for, and must not be retried. Each paid call can be
 * claimed once: by the attempt that made it, whether it succeeded or failed.
 */
export function createPaidCallLog({ capacity = 256 }: { capacity?: number } = {}) {
  let sequence = 0
  let evicted = 0
  const entries: { sequence: number; calls: Map<string, number> }[] = []

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

    /**
     * Claims `call` in a paid request recorded after `start` (a `sequence` read before the
     * attempt). Returns whether there was one; when records the attempt could have made are gone
     * already, it answers yes: a false yes only skips a retry, a false no could pay twice.
     */
    claim(start: number, call: { method: string; params?: unknown }) {
      const key = keyOf(call)
      for (const [index, entry] of entries.entries()) {
        if (entry.sequence <= start) continue
        const wildcard = entry.calls.has(anyCall)
        const count = entry.calls.get(key) ?? 0
        if (!wildcard && count === 0) continue
        if (!wildcard) {
          entry.calls.set(key, count - 1)
          if (count === 1) entry.calls.delete(key)
          if (entry.calls.size === 0) entries.splice(index, 1)
        }
        return true
      }
      return evicted > start
    },
  }
}

function keyOf({ method, params }: { method: string; params?: unknown }) {
  return JSON.stringify([method, params ?? null])
}

function callsOf(body: unknown): Map<string, number> {
  const calls = new Map<string, number>()
  try {
    const parsed = JSON.parse(String(body)) as
      | { method: string; params?: unknown }
      | { method: string; params?: unknown }[]
    for (const call of Array.isArray(parsed) ? parsed : [parsed]) {
      const key = keyOf(call)
      calls.set(key, (calls.get(key) ?? 0) + 1)
    }
  } catch {
    calls.set(anyCall, 1)
  }
  return calls
}
