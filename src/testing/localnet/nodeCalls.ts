/**
 * What the reserve shim asks of the node behind it (anvil): JSON-RPC calls that must succeed, the
 * storage it writes in the reserve's stead, and the key check a Tempo node makes on a fill.
 */
import {
  type Address,
  decodeFunctionResult,
  encodeFunctionData,
  type Hex,
  isAddressEqual,
  maxUint256,
  numberToHex,
  zeroAddress,
} from 'viem'
import { Abis, Addresses } from 'viem/tempo'
import { contextHashSlot } from './reserve.js'
import { post } from './rpcPlumbing.js'
import { allowanceSlot, type CallRequest, mappingSlot } from './transactions.js'

const unlimited = numberToHex(maxUint256, { size: 32 })

/** A JSON-RPC call to the node: its result, or an error naming the method that failed. */
export type NodeRpc = (method: string, params: unknown[]) => Promise<unknown>

/**
 * The node's JSON-RPC as one function, for the shim's own calls (reads, storage writes): a failed
 * call throws, since the shim cannot go on with what it was rewriting.
 *
 * @example
 * ```ts
 * const rpc = nodeRpcOf('http://127.0.0.1:8545')
 * const chainId = await rpc('eth_chainId', [])
 * ```
 */
export function nodeRpcOf(upstream: string): NodeRpc {
  return async (method, params) => {
    const [response] = await post(
      upstream,
      JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    )
    if (!response || response.error)
      throw new Error(`${method} failed: ${JSON.stringify(response?.error)}`)
    return response.result
  }
}

/**
 * Grants the reserve an unlimited allowance of each of `tokens` from `owner`, standing in for the
 * precompile's approve-less `systemTransferFrom`, which the Solidity reserve cannot do.
 *
 * @example
 * ```ts
 * await grantAllowances(rpc, sender, [Addresses.pathUsd])
 * ```
 */
export function grantAllowances(
  rpc: NodeRpc,
  owner: Address,
  tokens: readonly Address[],
): Promise<unknown[]> {
  return Promise.all(
    tokens.map((token) =>
      rpc('anvil_setStorageAt', [
        token,
        allowanceSlot(owner, Addresses.tip20ChannelReserve),
        unlimited,
      ]),
    ),
  )
}

/**
 * Writes `hash` into the reserve's context-hash slot for `sender`, where `open` reads it: the
 * precompile derives it from the transaction, which the Solidity reserve cannot see.
 *
 * @example
 * ```ts
 * await setContextHash(rpc, sender, contextHash)
 * ```
 */
export function setContextHash(rpc: NodeRpc, sender: Address, hash: Hex): Promise<unknown> {
  return rpc('anvil_setStorageAt', [
    Addresses.tip20ChannelReserve,
    mappingSlot(sender, contextHashSlot),
    hash,
  ])
}

/**
 * A Tempo node refuses to fill a transaction whose key authorization is for a key already on
 * chain (viem then fills again without it); anvil fills it, and the transaction is then dropped.
 *
 * @example
 * ```ts
 * if (await isRegisteredKey(rpc, request)) return keyAlreadyExists(message)
 * ```
 */
export async function isRegisteredKey(
  rpc: NodeRpc,
  request: CallRequest | undefined,
): Promise<boolean> {
  const keyId = (request?.keyAuthorization as { keyId?: Address } | undefined)?.keyId
  if (!request?.from || !keyId) return false
  const data = encodeFunctionData({
    abi: Abis.accountKeychain,
    functionName: 'getKey',
    args: [request.from, keyId],
  })
  const result = (await rpc('eth_call', [{ to: Addresses.accountKeychain, data }, 'latest'])) as Hex
  const key = decodeFunctionResult({
    abi: Abis.accountKeychain,
    functionName: 'getKey',
    data: result,
  })
  return !isAddressEqual(key.keyId, zeroAddress)
}
