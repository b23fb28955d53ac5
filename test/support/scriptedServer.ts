import type { ServerResponse } from 'node:http'
import { type Client, createClient, numberToHex } from 'viem'
import { type MppHttpTransportConfig, mppHttp } from '../../src/index.js'
import { challengeHeader, fakeChain, receiptHeader } from './fakePayments.js'
import { type FakeHandler, rpcResult, type useFakeServers } from './fakeServer.js'

/** How the server answers a paid request instead of accepting it. */
export type Refusal = {
  status: 402 | 410
  problem?: string
  /** Whether the answer offers a fresh challenge. */
  fresh: boolean
}

/** The refusals a server may give a paid request, by name. */
export const refusals: Record<string, Refusal> = {
  '402 expired': { status: 402, problem: 'payment-expired', fresh: true },
  '402 stale voucher': { status: 402, problem: 'session/stale-voucher', fresh: true },
  '402 plain': { status: 402, fresh: true },
  '402 plain, no challenge': { status: 402, fresh: false },
  '410 fresh': { status: 410, problem: 'session/channel-not-found', fresh: true },
  '410 no challenge': { status: 410, problem: 'session/channel-not-found', fresh: false },
}

export const problemType = (name: string) => `https://paymentauth.org/problems/${name}`

/** Accepts a paid request: its JSON-RPC result, with a receipt. */
export const accept = (response: ServerResponse, body: string) =>
  response
    .writeHead(200, { 'content-type': 'application/json', 'payment-receipt': receiptHeader() })
    .end(rpcResult(body))

/** A 402 with a fresh challenge and problem details of `type`. */
export function rejectWith(response: ServerResponse, type: string, challenge = challengeHeader()) {
  response
    .writeHead(402, { 'www-authenticate': challenge, 'content-type': 'application/problem+json' })
    .end(JSON.stringify({ type: problemType(type) }))
}

/**
 * A handler for a server that wants one payment per request: it asks each unpaid request for
 * payment with `challenge()` (a fresh challenge by default) and lets `paid` answer the paid ones
 * (by default it accepts them), so that a test writes only what its server does differently.
 */
export function paywall({
  challenge = () => challengeHeader(),
  paid = (request, response) => accept(response, request.body),
}: {
  challenge?: () => string | string[]
  paid?: FakeHandler
} = {}): FakeHandler {
  return (request, response, raw) => {
    if (!request.authorization)
      return response.writeHead(402, { 'www-authenticate': challenge() }).end()
    return paid(request, response, raw)
  }
}

/**
 * A server (of `serve`) that asks unpaid requests for payment with a fresh challenge (valid for
 * `lifetime` ms), accepts paid ones, except that it answers the next paid requests as `script`
 * says.
 */
export async function scriptedServer(
  serve: ReturnType<typeof useFakeServers>,
  { lifetime = 60_000 }: { lifetime?: number } = {},
) {
  const script: Refusal[] = []
  const fresh = () => challengeHeader({ expires: new Date(Date.now() + lifetime) })
  const server = await serve(
    paywall({
      challenge: fresh,
      paid: (request, response) => {
        const refusal = script.shift()
        if (!refusal) return accept(response, request.body)
        const headers: Record<string, string> = {}
        if (refusal.fresh) headers['www-authenticate'] = fresh()
        if (refusal.problem) headers['content-type'] = 'application/problem+json'
        response
          .writeHead(refusal.status, headers)
          .end(refusal.problem ? JSON.stringify({ type: problemType(refusal.problem) }) : undefined)
      },
    }),
  )
  return { ...server, script }
}

/** A client of the fake chain on `mppHttp(url, config)`. */
export const clientFor = (url: string, config: MppHttpTransportConfig = {}) =>
  createClient({ chain: fakeChain, transport: mppHttp(url, config) })

/** The same, with viem's retries on (3, 1 ms apart): a paid request must never be retried. */
export const retryingClient = (url: string, config: MppHttpTransportConfig) =>
  clientFor(url, { retryCount: 3, retryDelay: 1, ...config })

/** `eth_getBalance` of the address numbered `id`: distinct calls, for distinct requests. */
export const call = (client: Client, id = 0, signal?: AbortSignal) =>
  client.request(
    { method: 'eth_getBalance', params: [numberToHex(id, { size: 20 }), 'latest'] },
    signal ? { signal } : undefined,
  )

/** A promise and the function that settles it, for waiting on an event. */
export function deferred<value = void>() {
  let resolve!: (value: value) => void
  const promise = new Promise<value>((resolve_) => {
    resolve = resolve_
  })
  return { promise, resolve }
}

/** A promise that never settles. */
export const never = <value>() => new Promise<value>(() => {})

/** Resolves once the server has received `count` paid requests. */
export function paidRequests(count: number) {
  let seen = 0
  let reached: () => void = () => {}
  const done = new Promise<void>((resolve) => {
    reached = resolve
  })
  return {
    done,
    record() {
      if (++seen === count) reached()
    },
  }
}
