/**
 * The reserve shim's JSON-RPC plumbing: which methods it reads, how a request (single or batch)
 * is answered and forwarded, the message rewrites it makes, waiting for a receipt, and a lock per
 * key for what must not interleave.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { type Hex, maxUint256 } from 'viem'
import type { Call, CallRequest, RpcMessage, RpcResponse } from './transactions.js'

/** The methods the shim reads; every other is forwarded untouched. */
const interceptedMethods = new Set([
  'eth_call',
  'eth_estimateGas',
  'eth_fillTransaction',
  'eth_sendRawTransaction',
  'eth_sendRawTransactionSync',
])

/** Answers one HTTP request to the shim: each JSON-RPC message (or a batch's) through `handle`. */
export async function serve(
  request: IncomingMessage,
  response: ServerResponse,
  upstream: string,
  handle: (message: RpcMessage) => Promise<RpcResponse>,
) {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  const body = Buffer.concat(chunks).toString()
  const reply = (status: number, text: string) =>
    response.writeHead(status, { 'content-type': 'application/json' }).end(text)

  let parsed: RpcMessage | RpcMessage[] | undefined
  try {
    parsed = JSON.parse(body)
  } catch {}
  const messages = parsed === undefined ? [] : Array.isArray(parsed) ? parsed : [parsed]
  if (!messages.some((message) => interceptedMethods.has(message?.method))) {
    const upstreamResponse = await fetch(upstream, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    return reply(upstreamResponse.status, await upstreamResponse.text())
  }
  const results = await Promise.all(messages.map(handle))
  return reply(200, JSON.stringify(Array.isArray(parsed) ? results : results[0]))
}

/** POSTs a JSON-RPC body to `url`: its answers, as a list (one for a single request). */
export async function post(url: string, body: string): Promise<RpcResponse[]> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  })
  const json = (await response.json()) as RpcResponse | RpcResponse[]
  return Array.isArray(json) ? json : [json]
}

/**
 * A call in Tempo's form (`calls: [{ to, data, value }]`, no `to`: what viem sends for an account
 * of `viem/tempo`) as the plain call anvil runs: a Tempo node runs the one call the same way.
 */
export function asSingleCall(message: RpcMessage): RpcMessage {
  const [request, ...rest] = message.params ?? []
  const { calls, ...fields } = (request ?? {}) as CallRequest
  if (calls?.length !== 1 || (request as CallRequest).to) return message
  const [{ to, data, input, value } = {}] = calls as (Call & { value?: Hex })[]
  return { ...message, params: [{ ...fields, to, data: data ?? input, value }, ...rest] }
}

/**
 * A simulation (`eth_call`) of an expiring-nonce transaction without its gas limit: anvil counts
 * an account's creation in the intrinsic gas of any transaction at nonce 0, expiring ones
 * included, which a Tempo node does not (and anvil does not charge when it executes one), so a
 * server simulating a charge with its real gas limit was told "intrinsic gas too high".
 */
export function withoutExpiringGasLimit(message: RpcMessage): RpcMessage {
  const [request, ...rest] = message.params ?? []
  const { gas: _gas, ...fields } = (request ?? {}) as CallRequest & { gas?: Hex }
  if (fields.nonceKey === undefined || BigInt(fields.nonceKey) !== maxUint256) return message
  return { ...message, params: [fields, ...rest] }
}

/** Waits, at most 5 s, until the node has mined transaction `hash`. */
export async function waitForReceipt(
  rpc: (method: string, params: unknown[]) => Promise<unknown>,
  hash: Hex,
) {
  // A transaction that fails keychain validation is accepted but never mined: give up after 5 s.
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await rpc('eth_getTransactionReceipt', [hash])) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Runs async functions one at a time per key. */
export class KeyedLock {
  #tails = new Map<string, Promise<unknown>>()

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const current = (this.#tails.get(key) ?? Promise.resolve()).then(fn)
    const tail = current.catch(() => {})
    this.#tails.set(key, tail)
    try {
      return await current
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }
}
