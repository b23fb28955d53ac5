import { stringify } from 'viem'

/** A JSON-RPC call as the transport is asked for it, or as a request body carries it. */
export type Call = { method: string; params?: unknown }

/** One attempt of a call, from the moment it is sent until it ends. */
export type Attempt = {
  readonly call: Call
  /** Whether a paid HTTP request may have carried it: it must then not be repeated. */
  paid: boolean
  /** The call's method and params as text, worked out only when a paid request needs it. */
  key: string | undefined
  /** When it began: attempts are numbered in order across the transport. */
  readonly sequence: number
}

/**
 * The attempts in flight on a transport, so that an attempt that fails can tell whether it was
 * paid for. Each attempt of each call is tracked on its own, from its start to its end, so
 * memory is bounded by what is in flight and nothing is forgotten however many paid requests go
 * by meanwhile. Only a 402 goes through them all.
 *
 * A paid request stands for the attempts in flight whose call (method and params) it carries. An
 * identical call in flight in another request is taken too: that errs the safe way, since a
 * wrong "paid" only skips a retry, and a wrong "not paid" could pay twice. For the same reason,
 * a paid body that cannot be read stands for every attempt in flight.
 */
export function createInFlightCalls() {
  const attempts = new Set<Attempt>()
  let sequence = 0

  return {
    /** The number the next attempt will get. */
    get sequence() {
      return sequence
    },

    /** Starts tracking an attempt of `call`; `end` it when it settles. */
    begin(call: Call): Attempt {
      const attempt: Attempt = { call, paid: false, key: undefined, sequence: sequence++ }
      attempts.add(attempt)
      return attempt
    },

    end(attempt: Attempt) {
      attempts.delete(attempt)
    },

    /** The attempts in flight that a request of `calls` (undefined: unreadable) may carry. */
    carriedBy(calls: readonly Call[] | undefined): Attempt[] {
      const keys = calls && new Set(calls.map(keyOf))
      const carried: Attempt[] = []
      for (const attempt of attempts) {
        attempt.key ??= keyOf(attempt.call)
        if (!keys || keys.has(attempt.key)) carried.push(attempt)
      }
      return carried
    },
  }
}

/** The calls of a JSON-RPC request body (one message or a batch), or undefined if unreadable. */
export function callsOf(body: unknown): Call[] | undefined {
  try {
    const calls = [JSON.parse(String(body)) as unknown].flat()
    return calls.every(isCall) ? calls : undefined
  } catch {
    return undefined
  }
}

function isCall(value: unknown): value is Call {
  return typeof (value as Call | null)?.method === 'string'
}

// viem's `stringify`, as for the request body: the call's params may hold bigints.
function keyOf({ method, params }: Call) {
  return stringify([method, params ?? null])
}
