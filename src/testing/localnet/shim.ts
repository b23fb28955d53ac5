import { createServer, type IncomingMessage } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import type { Duplex } from 'node:stream'
import {
  type Address,
  decodeFunctionResult,
  encodeFunctionData,
  type Hex,
  isAddressEqual,
  keccak256,
  maxUint256,
  numberToHex,
  stringToHex,
  zeroAddress,
} from 'viem'
import { Abis, Addresses } from 'viem/tempo'
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
  allowanceSlot,
  type Call,
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

/** The intrinsic gas of a transaction: counted once however many calls it makes. */
const baseTransactionGas = 21_000n

const unlimited = numberToHex(maxUint256, { size: 32 })
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
 */
export async function startReserveShim({
  upstream,
  port = 0,
}: {
  upstream: string
  /** Loopback port to listen on. @default 0 (a free port) */
  port?: number | undefined
}): Promise<ReserveShim> {
  const locks = new KeyedLock()
  const rpc = async (method: string, params: unknown[]) => {
    const [response] = await post(
      upstream,
      JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    )
    if (!response || response.error)
      throw new Error(`${method} failed: ${JSON.stringify(response?.error)}`)
    return response.result
  }

  const grantAllowances = (owner: Address, tokens: readonly Address[]) =>
    Promise.all(
      tokens.map((token) =>
        rpc('anvil_setStorageAt', [
          token,
          allowanceSlot(owner, Addresses.tip20ChannelReserve),
          unlimited,
        ]),
      ),
    )
  const setContextHash = (sender: Address, hash: Hex) =>
    rpc('anvil_setStorageAt', [
      Addresses.tip20ChannelReserve,
      mappingSlot(sender, contextHashSlot),
      hash,
    ])

  /**
   * Simulations have no signed transaction to derive the context hash from: they run with a
   * placeholder in the sender's slot, restored afterwards.
   */
  const simulate = async (message: RpcMessage, forward: () => Promise<RpcResponse>) => {
    const request = message.params?.[0] as CallRequest | undefined
    const calls = reserveCallsOf(callsOf(request)).map(decodeReserveCall)
    const extraGas =
      message.method === 'eth_fillTransaction'
        ? reserveCallGas * BigInt(calls.length) +
          keyAuthorizationGasOf(request?.keyAuthorization) +
          (request?.keyId ? accessKeyGas : 0n)
        : 0n
    if (!request?.from || calls.length === 0) {
      const filled = await forward()
      const from = request?.from
      if (message.method !== 'eth_fillTransaction' || !from) return raiseFilledGas(filled, extraGas)
      return withGas(filled, await estimateCalls({ ...request, from }), extraGas)
    }
    const sender = request.from
    return locks.run(sender.toLowerCase(), async () => {
      const slot = mappingSlot(sender, contextHashSlot)
      const previous = (await rpc('eth_getStorageAt', [
        Addresses.tip20ChannelReserve,
        slot,
        'latest',
      ])) as Hex
      await setContextHash(sender, keccak256(`${simulationContextTag}${sender.slice(2)}`))
      await grantAllowances(sender, reservedTokensOf(calls))
      try {
        return raiseFilledGas(await forward(), extraGas)
      } finally {
        await setContextHash(sender, previous)
      }
    })
  }

  /**
   * The gas a Tempo node would fill in for `request`: anvil's fill (and its estimate of a batch of
   * calls) reports a fixed 771,000 whatever the calls, which made every fee quote several times
   * what was paid. Each call is estimated alone (anvil estimates a single call for real), as a
   * transaction past its account's creation, less the base cost of a transaction counted once per
   * call beyond the first; a transaction that creates its sender's account (the protocol nonce 0)
   * adds what that costs (what the first call's estimate at nonce 0 adds), and an expiring-nonce
   * one never does. `undefined` if a call cannot be estimated (it would fail): the fill's figure
   * stays.
   */
  const estimateCalls = async (request: CallRequest & { from: Address }) => {
    const calls = callsOf(request) as (Call & { value?: Hex })[]
    const estimate = async ({ to, data, input, value }: (typeof calls)[number], nonce: Hex) =>
      BigInt(
        (await rpc('eth_estimateGas', [
          {
            from: request.from,
            to,
            data: data ?? input,
            nonce,
            ...(value ? { value } : {}),
            ...(request.feeToken ? { feeToken: request.feeToken } : {}),
          },
        ])) as Hex,
      )
    try {
      let gas = 0n
      for (const call of calls) gas += await estimate(call, '0x1')
      gas -= baseTransactionGas * BigInt(calls.length - 1)
      const [first] = calls
      if (first && (await createsAccount(request)))
        gas += (await estimate(first, '0x0')) - (await estimate(first, '0x1'))
      return gas
    } catch {
      return undefined
    }
  }

  /**
   * Whether a transaction of `request` may pay for creating its sender's account: one on the
   * protocol nonce at 0 does; an expiring-nonce one never does; another nonce lane is counted as
   * if it did (its own first use has a cost of its kind).
   */
  const createsAccount = async (request: CallRequest & { from: Address }) => {
    const lane = request.nonceKey === undefined ? 0n : BigInt(request.nonceKey)
    if (lane === maxUint256) return false
    if (lane !== 0n) return true
    const nonce =
      request.nonce ?? ((await rpc('eth_getTransactionCount', [request.from, 'pending'])) as Hex)
    return BigInt(nonce) === 0n
  }

  /**
   * A Tempo node refuses to fill a transaction whose key authorization is for a key already on
   * chain (viem then fills again without it); anvil fills it, and the transaction is then dropped.
   */
  const isRegisteredKey = async (request: CallRequest | undefined) => {
    const keyId = (request?.keyAuthorization as { keyId?: Address } | undefined)?.keyId
    if (!request?.from || !keyId) return false
    const data = encodeFunctionData({
      abi: Abis.accountKeychain,
      functionName: 'getKey',
      args: [request.from, keyId],
    })
    const result = (await rpc('eth_call', [
      { to: Addresses.accountKeychain, data },
      'latest',
    ])) as Hex
    const key = decodeFunctionResult({
      abi: Abis.accountKeychain,
      functionName: 'getKey',
      data: result,
    })
    return !isAddressEqual(key.keyId, zeroAddress)
  }

  const handle = async (message: RpcMessage): Promise<RpcResponse> => {
    const forward = async () => (await post(upstream, JSON.stringify(message)))[0] as RpcResponse
    switch (message.method) {
      case 'eth_fillTransaction':
        if (await isRegisteredKey(message.params?.[0] as CallRequest | undefined))
          return {
            jsonrpc: '2.0',
            id: message.id,
            error: {
              code: -32003,
              message: 'KeyAlreadyExists: the access key is already authorized',
            },
          }
        return simulate(message, forward)
      case 'eth_estimateGas': {
        // A batch of calls: estimated call by call, as a fill is (anvil's own figure is fixed).
        const request = message.params?.[0] as CallRequest | undefined
        const calls = request?.calls ?? []
        if (request?.from && calls.length > 1 && reserveCallsOf(calls).length === 0) {
          const gas = await estimateCalls({ ...request, from: request.from })
          if (gas !== undefined) return { jsonrpc: '2.0', id: message.id, result: numberToHex(gas) }
        }
        const plain = asSingleCall(message)
        return simulate(
          plain,
          async () => (await post(upstream, JSON.stringify(plain)))[0] as RpcResponse,
        )
      }
      case 'eth_call': {
        const plain = asSingleCall(withoutExpiringGasLimit(message))
        return simulate(
          plain,
          async () => (await post(upstream, JSON.stringify(plain)))[0] as RpcResponse,
        )
      }
      case 'eth_sendRawTransaction':
      case 'eth_sendRawTransactionSync':
        break
      default:
        return forward()
    }

    const transaction = await inspect(message.params?.[0] as Hex)
    if (!transaction) return forward()
    const { sender, contextHash, reservedTokens } = transaction
    // One reserve transaction per sender at a time: the context slot is per sender, and the
    // reserve consumes it when the transaction executes.
    return locks.run(sender.toLowerCase(), async () => {
      if (contextHash) await setContextHash(sender, contextHash)
      await grantAllowances(sender, reservedTokens)
      const response = await forward()
      if (message.method === 'eth_sendRawTransaction' && typeof response.result === 'string')
        await waitForReceipt(rpc, response.result as Hex)
      return response
    })
  }

  const server = createServer((request, response) => {
    serve(request, response, upstream, handle).catch((error: Error) => {
      if (!response.headersSent)
        response.writeHead(502, { 'content-type': 'text/plain' }).end(error.message)
    })
  })
  // WebSocket (subscriptions) goes to the node itself, which serves it on its HTTP port: what the
  // shim rewrites are transactions and calls, sent over HTTP.
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
