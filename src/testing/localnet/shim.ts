import { createServer, type IncomingMessage, type Server } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import type { Duplex } from 'node:stream'
import { type Hex, keccak256, numberToHex, stringToHex } from 'viem'
import { Addresses } from 'viem/tempo'
import { estimateCalls } from './callGas.js'
import {
  grantAllowances,
  isRegisteredKey,
  type NodeRpc,
  nodeRpcOf,
  setContextHash,
} from './nodeCalls.js'
import { contextHashSlot } from './reserve.js'
import {
  asSingleCall,
  KeyedLock,
  post,
  serve,
  waitForReceipt,
  withoutExpiringGasLimit,
} from './rpcPlumbing.js'
import {
  type CallRequest,
  callsOf,
  decodeReserveCall,
  inspect,
  keyAuthorizationGasOf,
  mappingSlot,
  type RpcMessage,
  type RpcResponse,
  raiseFilledGas,
  reserveCallsOf,
  reservedTokensOf,
  withGas,
} from './transactions.js'

/**
 * Gas a transaction gets per channel reserve call, on top of what `eth_fillTransaction` reports:
 * anvil's fill ignores the calls and returns a fixed figure, too little for the reserve's storage
 * writes and token movements under Tempo's gas schedule.
 */
const reserveCallGas = 1_500_000n

/**
 * Gas added for a transaction an access key signs (`keyId` in the fill): an estimate of its calls
 * leaves out the keychain's checks and its spending-limit bookkeeping (which may write a slot,
 * 250,000 gas under Tempo's schedule), and anvil silently drops a transaction short of gas.
 */
const accessKeyGas = 250_000n

const simulationContextTag = stringToHex('viem-mpp localnet simulation')

export type ReserveShim = {
  /** The JSON-RPC URL to use instead of the upstream's. */
  url: string
  /** Closes the listening socket and its connections. */
  stop(): Promise<void>
}

/**
 * Starts a JSON-RPC proxy in front of anvil that supplies what the Solidity channel reserve cannot
 * do as a contract, so that it behaves like the TIP-1034 precompile:
 *
 * 1. Before a transaction that opens a channel executes, it writes the transaction's
 *    `expiringNonceHash` (keccak256 of its signing payload and sender) into the reserve's
 *    context-hash slot for that sender, where `open` reads (and clears) it.
 * 2. It grants the reserve an unlimited TIP-20 allowance from the sender for each token an `open`
 *    or `topUp` reserves, standing in for the precompile's approve-less `systemTransferFrom`.
 * 3. It runs simulations of reserve calls (`eth_call`, `eth_estimateGas`, `eth_fillTransaction`)
 *    with a placeholder context hash, and raises the gas `eth_fillTransaction` reports for them
 *    and for transactions that carry a key authorization.
 *
 * Apart from the reserve, it also makes `eth_fillTransaction` refuse a key authorization for a
 * key already on chain (`KeyAlreadyExists`), as a Tempo node does.
 *
 * Everything else is forwarded untouched; a WebSocket upgrade is tunnelled to the node as it is
 * (subscriptions: what the shim rewrites goes over HTTP).
 *
 * @example
 * ```ts
 * const shim = await startReserveShim({ upstream: anvil.rpcUrl })
 * // point clients at shim.url instead of anvil's URL…
 * await shim.stop()
 * ```
 */
export async function startReserveShim({
  upstream,
  port = 0,
}: {
  upstream: string
  /** Loopback port to listen on. @default 0 (a free port) */
  port?: number | undefined
}): Promise<ReserveShim> {
  const state: ShimState = { upstream, rpc: nodeRpcOf(upstream), locks: new KeyedLock() }
  const server = createServer((request, response) => {
    serve(request, response, upstream, (message) => handleMessage(state, message)).catch(
      (error: Error) => {
        if (!response.headersSent)
          response.writeHead(502, { 'content-type': 'text/plain' }).end(error.message)
      },
    )
  })
  // WebSocket (subscriptions) goes to the node itself, which serves it on its HTTP port: what the
  // shim rewrites are transactions and calls, sent over HTTP.
  const tunnels = tunnelWebSockets(server, upstream)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const { port: listening } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${listening}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
        for (const tunnel of tunnels) tunnel.destroy()
      }),
  }
}

/** What every message the shim answers needs: where to forward it, and what it may write. */
type ShimState = {
  /** The node's JSON-RPC URL, where each message goes once rewritten. */
  upstream: string
  /** The node's JSON-RPC for the shim's own reads and storage writes. */
  rpc: NodeRpc
  /** One reserve transaction or simulation per sender at a time (the context slot is per sender). */
  locks: KeyedLock
}

/**
 * Answers one JSON-RPC message: a call, estimate or fill is simulated as the precompile would run
 * it, a raw transaction gets the reserve's storage prepared first, and any other is forwarded.
 */
async function handleMessage(state: ShimState, message: RpcMessage): Promise<RpcResponse> {
  switch (message.method) {
    case 'eth_fillTransaction':
      return fillTransaction(state, message)
    case 'eth_estimateGas':
      return estimateGas(state, message)
    case 'eth_call': {
      const plain = asSingleCall(withoutExpiringGasLimit(message))
      return simulate(state, plain, forwarderOf(state.upstream, plain))
    }
    case 'eth_sendRawTransaction':
    case 'eth_sendRawTransactionSync':
      return sendRawTransaction(state, message)
    default:
      return forwarderOf(state.upstream, message)()
  }
}

/** Sends `message` to the node as it is, when called: the last step of every answer. */
function forwarderOf(upstream: string, message: RpcMessage): () => Promise<RpcResponse> {
  return async () => (await post(upstream, JSON.stringify(message)))[0] as RpcResponse
}

/**
 * `eth_fillTransaction` as a Tempo node answers it: refused for a key authorization of a key
 * already on chain (`KeyAlreadyExists`), else simulated with the gas the reserve needs.
 */
async function fillTransaction(state: ShimState, message: RpcMessage): Promise<RpcResponse> {
  if (await isRegisteredKey(state.rpc, message.params?.[0] as CallRequest | undefined))
    return {
      jsonrpc: '2.0',
      id: message.id,
      error: {
        code: -32003,
        message: 'KeyAlreadyExists: the access key is already authorized',
      },
    }
  return simulate(state, message, forwarderOf(state.upstream, message))
}

/**
 * `eth_estimateGas` with a real figure for a batch of calls (anvil's is fixed), and a reserve call
 * simulated as the precompile runs it.
 */
async function estimateGas(state: ShimState, message: RpcMessage): Promise<RpcResponse> {
  // A batch of calls: estimated call by call, as a fill is (anvil's own figure is fixed).
  const request = message.params?.[0] as CallRequest | undefined
  const calls = request?.calls ?? []
  if (request?.from && calls.length > 1 && reserveCallsOf(calls).length === 0) {
    const gas = await estimateCalls(state.rpc, { ...request, from: request.from })
    if (gas !== undefined) return { jsonrpc: '2.0', id: message.id, result: numberToHex(gas) }
  }
  const plain = asSingleCall(message)
  return simulate(state, plain, forwarderOf(state.upstream, plain))
}

/**
 * Simulations have no signed transaction to derive the context hash from: they run with a
 * placeholder in the sender's slot, restored afterwards.
 */
async function simulate(
  state: ShimState,
  message: RpcMessage,
  forward: () => Promise<RpcResponse>,
): Promise<RpcResponse> {
  const request = message.params?.[0] as CallRequest | undefined
  const calls = reserveCallsOf(callsOf(request)).map(decodeReserveCall)
  const extraGas = message.method === 'eth_fillTransaction' ? fillGasOf(request, calls.length) : 0n
  if (!request?.from || calls.length === 0) {
    const filled = await forward()
    const from = request?.from
    if (message.method !== 'eth_fillTransaction' || !from) return raiseFilledGas(filled, extraGas)
    return withGas(filled, await estimateCalls(state.rpc, { ...request, from }), extraGas)
  }
  const sender = request.from
  return state.locks.run(sender.toLowerCase(), async () => {
    const slot = mappingSlot(sender, contextHashSlot)
    const previous = (await state.rpc('eth_getStorageAt', [
      Addresses.tip20ChannelReserve,
      slot,
      'latest',
    ])) as Hex
    await setContextHash(state.rpc, sender, keccak256(`${simulationContextTag}${sender.slice(2)}`))
    await grantAllowances(state.rpc, sender, reservedTokensOf(calls))
    try {
      return raiseFilledGas(await forward(), extraGas)
    } finally {
      await setContextHash(state.rpc, sender, previous)
    }
  })
}

/**
 * The gas a fill of `request` leaves out and the shim adds: its reserve calls' storage writes, its
 * key authorization, and an access key's checks.
 */
function fillGasOf(request: CallRequest | undefined, reserveCalls: number): bigint {
  return (
    reserveCallGas * BigInt(reserveCalls) +
    keyAuthorizationGasOf(request?.keyAuthorization) +
    (request?.keyId ? accessKeyGas : 0n)
  )
}

/**
 * A raw transaction that calls the reserve, with the reserve's storage prepared as the
 * precompile would see it (context hash, allowances); `eth_sendRawTransaction` then waits for the
 * receipt, so that the sender's next one finds the slot consumed.
 */
async function sendRawTransaction(state: ShimState, message: RpcMessage): Promise<RpcResponse> {
  const forward = forwarderOf(state.upstream, message)
  const transaction = await inspect(message.params?.[0] as Hex)
  if (!transaction) return forward()
  const { sender, contextHash, reservedTokens } = transaction
  // One reserve transaction per sender at a time: the context slot is per sender, and the
  // reserve consumes it when the transaction executes.
  return state.locks.run(sender.toLowerCase(), async () => {
    if (contextHash) await setContextHash(state.rpc, sender, contextHash)
    await grantAllowances(state.rpc, sender, reservedTokens)
    const response = await forward()
    if (message.method === 'eth_sendRawTransaction' && typeof response.result === 'string')
      await waitForReceipt(state.rpc, response.result as Hex)
    return response
  })
}

/**
 * Tunnels each WebSocket upgrade on `server` to the node as it came: the shim rewrites nothing a
 * socket carries. The open tunnels, for `stop` to destroy.
 */
function tunnelWebSockets(server: Server, upstream: string): Set<Duplex> {
  const tunnels = new Set<Duplex>()
  server.on('upgrade', (request: IncomingMessage, client: Duplex, head: Buffer) => {
    const target = new URL(upstream)
    const node = connect(Number(target.port || 80), target.hostname)
    const lines = [`${request.method} ${request.url} HTTP/1.1`]
    for (let i = 0; i < request.rawHeaders.length; i += 2)
      lines.push(`${request.rawHeaders[i]}: ${request.rawHeaders[i + 1]}`)
    node.write(`${lines.join('\r\n')}\r\n\r\n`)
    if (head.length) node.write(head)
    for (const [from, to] of [
      [client, node],
      [node, client],
    ] as const) {
      tunnels.add(from)
      from.pipe(to)
      from.on('error', () => to.destroy())
      from.on('close', () => {
        tunnels.delete(from)
        to.destroy()
      })
    }
  })
  return tunnels
}
