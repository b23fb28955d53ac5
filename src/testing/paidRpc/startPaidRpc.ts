import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Store } from 'mppx/server'
import { type Address, type Chain, createClient, formatUnits, type Hex, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { Addresses } from 'viem/tempo'
import { emptyCounters, type PaidRpcCounters } from './counters.js'
import { type PaidRpcIntent, paymentGate, tempoMethods } from './gate.js'
import { httpListenerOf, inBandAnswererOf, type PaidRpcState } from './httpAnswers.js'
import { type PaidRpcChannel, readChannel, settleChannel } from './serverChannels.js'
import { assertReachable, socketUrlOf, upstreamOf } from './upstream.js'
import { serveWebSocket } from './webSocketServer.js'

export type { PaidRpcChannel, PaidRpcIntent }

/** Private key of anvil's dev account #9, the default payee: funded on every localnet. */
const defaultPayeeKey: Hex = '0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6'

export type StartPaidRpcOptions = {
  /** JSON-RPC URL that paid requests are forwarded to, and that payments are settled on. */
  upstream: string
  /** The upstream's chain (e.g. `startLocalnet().chain`). */
  chain: Chain
  /**
   * The payment intents offered in each 402, in order of preference. Both at once offers both
   * challenges in one 402. @default 'charge'
   */
  intent?: PaidRpcIntent | readonly PaidRpcIntent[] | undefined
  /** Price of one HTTP request (a batch counts once), in the currency's base units. @default 1000n */
  price?: bigint | undefined
  /** The deposit suggested to session clients, in base units. @default 1000 × price */
  suggestedDeposit?: bigint | undefined
  /** TIP-20 currency. @default pathUSD */
  currency?: Address | undefined
  /** Decimals of `currency`. @default 6 */
  decimals?: number | undefined
  /**
   * Private key of the payee: receives charges, and signs session settle/close transactions.
   * @default anvil dev account #9
   */
  payeePrivateKey?: Hex | undefined
  /** HMAC secret for stateless challenge verification (≥ 32 bytes). @default random */
  secretKey?: string | undefined
  /** Realm named in challenges. @default 'viem-mpp paid RPC' */
  realm?: string | undefined
  /** Loopback port. @default 0 (a free port) */
  port?: number | undefined
  /**
   * The origin allowed to call the server from a browser page (`'*'` for any), or none. With one,
   * every answer allows that origin and exposes `WWW-Authenticate` and `Payment-Receipt`, and a
   * CORS preflight (`OPTIONS`, not counted in `counters`) allows `POST` with `Authorization` and
   * `Content-Type`: what a page needs to read a 402's challenges and a paid answer's receipt, and
   * to send a credential. @default none (no CORS headers)
   */
  cors?: string | undefined
  /**
   * How payment is asked for and answered: `http402` (a `402` with `WWW-Authenticate`, the
   * credential in `Authorization`, the receipt in `Payment-Receipt`), or `jsonrpc`, in-band as
   * draft-payment-transport-mcp-00 says (a `200` whose JSON-RPC error is `-32042` with the
   * challenges, `-32043` when a credential was refused; the credential in the request's
   * root-level `_meta["org.paymentauth/credential"]` or `params._meta`; the receipt in the
   * answer's root-level `_meta["org.paymentauth/receipt"]`). A batch is one paid request: its
   * credential rides on its first element, and each of its requests is answered the error.
   * @default 'http402'
   */
  signalling?: 'http402' | 'jsonrpc' | undefined
  /**
   * `ws` serves the same paid JSON-RPC over WebSocket (the `ws` package), in-band as
   * `signalling: 'jsonrpc'` says (a socket has no status): each message is one paid request.
   * `eth_subscribe` is paid like any request and lives on a WebSocket of the client's own to
   * the upstream (its `ws://` form); its notifications are relayed, never paid, and
   * `eth_unsubscribe` is free. `url` is then
   * `ws://127.0.0.1:<port>`. @default 'http'
   */
  transport?: 'http' | 'ws' | undefined
}

export type PaidRpc = {
  /** URL of the paid JSON-RPC endpoint. */
  url: string
  /** The payee's address. */
  payee: Address
  /** Price of one request in base units. */
  price: bigint
  /** Live counters. */
  counters: PaidRpcCounters
  /** Zeroes the counters. */
  resetCounters(): void
  /**
   * What the server holds of a session channel: the highest voucher it accepted (the amount the
   * payee can settle on chain, whatever it served) and what it charged; `undefined` if it keeps no
   * record of it. This is the counterparty's truth, for tests to assert against.
   */
  channel(channelId: Hex): Promise<PaidRpcChannel | undefined>
  /**
   * Settles the server's highest voucher of a channel on chain, as a payee may at any time
   * (TIP-1034 `settle`), and returns the transaction hash; `undefined` if it holds none.
   */
  settle(channelId: Hex): Promise<Hex | undefined>
  /**
   * Drops the server's record of a session channel, as a server that lost its state would: the
   * next voucher for it is answered `410 Gone`.
   */
  forgetChannel(channelId: Hex): Promise<void>
  /** Closes the server and its connections. Idempotent. */
  stop(): Promise<void>
}

/**
 * Starts an mppx server that gates a JSON-RPC upstream with `402 Payment Required`: it answers
 * unpaid requests with Tempo challenges (charge, TIP-1034 session, or both), verifies and settles
 * payments on the chain, forwards paid requests (single or batch) to the upstream, and answers
 * session management requests (top-up, close) itself.
 *
 * @example
 * ```ts
 * import { startLocalnet, startPaidRpc } from 'viem-mpp/testing'
 *
 * const net = await startLocalnet()
 * const rpc = await startPaidRpc({ upstream: net.rpcUrl, chain: net.chain, intent: 'session' })
 * // point mppHttp(rpc.url) at it…
 * await rpc.stop()
 * await net.stop()
 * ```
 */
export async function startPaidRpc(options: StartPaidRpcOptions): Promise<PaidRpc> {
  const {
    upstream,
    chain,
    intent = 'charge',
    price = 1000n,
    currency = Addresses.pathUsd,
    decimals = 6,
    payeePrivateKey = defaultPayeeKey,
    secretKey = randomBytes(32).toString('hex'),
    realm = 'viem-mpp paid RPC',
    port = 0,
    cors,
    transport = 'http',
  } = options
  const signalling = transport === 'ws' ? 'jsonrpc' : (options.signalling ?? 'http402')
  const suggestedDeposit = options.suggestedDeposit ?? price * 1000n
  const intents = typeof intent === 'string' ? [intent] : intent

  const upstreamRpc = upstreamOf(upstream)
  await assertReachable(upstreamRpc)

  const payee = privateKeyToAccount(payeePrivateKey)
  const client = createClient({ account: payee, chain, transport: http(upstream) })
  const channels = Store.memory()
  const counters = emptyCounters()
  const methods = tempoMethods({ currency, decimals, client, channels, suggestedDeposit })
  const amount = formatUnits(price, decimals)
  const gate = paymentGate({ methods, intents, amount, secretKey, realm, counters })
  const state: PaidRpcState = { gate, upstream: upstreamRpc, counters }

  const server = createServer(httpListenerOf({ ...state, cors, signalling }))
  const sockets =
    transport === 'ws'
      ? await serveWebSocket(server, {
          answererFor: (overSocket) => inBandAnswererOf(state, overSocket),
          upstream: socketUrlOf(upstream),
          counters,
        })
      : undefined

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const address = server.address() as AddressInfo
  let stopping: Promise<void> | undefined

  return {
    url: `${transport === 'ws' ? 'ws' : 'http'}://127.0.0.1:${address.port}`,
    payee: payee.address,
    price,
    counters,
    resetCounters() {
      Object.assign(counters, emptyCounters())
    },
    channel: (channelId) => readChannel(channels, channelId),
    settle: (channelId) => settleChannel(client, channels, channelId),
    async forgetChannel(channelId) {
      await channels.delete(channelId.toLowerCase())
    },
    stop() {
      for (const socket of sockets?.clients ?? []) socket.terminate()
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return stopping
    },
  }
}
