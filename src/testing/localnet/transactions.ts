/**
 * What the reserve shim reads of the transactions and calls it rewrites: the reserve calls they
 * make, the tokens they move, their key authorizations, and the gas each needs on top of anvil's
 * estimate.
 */
import { SignatureEnvelope, TxEnvelopeTempo } from 'ox/tempo'
import {
  type Address,
  decodeFunctionData,
  encodeAbiParameters,
  type Hex,
  isAddressEqual,
  keccak256,
  numberToHex,
  parseTransaction,
  recoverTransactionAddress,
  serializeTransaction,
} from 'viem'
import { Abis, Addresses } from 'viem/tempo'

/**
 * Decodes a signed raw transaction that calls the reserve; `undefined` for any other transaction,
 * and for one the shim cannot decode (anvil then judges it as it is).
 */
export async function inspect(raw: Hex) {
  try {
    const { sender, signingPayload, calls } = await decodeSigned(raw)
    const reserveCalls = reserveCallsOf(calls).map(decodeReserveCall)
    if (reserveCalls.length === 0) return undefined
    const opens = reserveCalls.some((call) => call?.functionName === 'open')
    return {
      sender,
      /** The TIP-1034 `expiringNonceHash` of the transaction, when it opens a channel. */
      contextHash: opens ? keccak256(`${signingPayload}${sender.slice(2)}`) : undefined,
      reservedTokens: reservedTokensOf(reserveCalls),
    }
  } catch {
    return undefined
  }
}

async function decodeSigned(
  raw: Hex,
): Promise<{ sender: Address; signingPayload: Hex; calls: readonly Call[] }> {
  if (raw.startsWith(TxEnvelopeTempo.serializedType)) {
    const envelope = TxEnvelopeTempo.deserialize(raw as TxEnvelopeTempo.Serialized)
    if (!envelope.signature) throw new Error('unsigned transaction')
    const sender = SignatureEnvelope.extractAddress({
      payload: TxEnvelopeTempo.getSignPayload(envelope),
      signature: envelope.signature,
      root: true,
    })
    // Excludes the fee payer's signature and fee token, as the protocol's hash does.
    const signingPayload = TxEnvelopeTempo.encodeForSigning(envelope)
    return { sender, signingPayload, calls: envelope.calls as readonly Call[] }
  }
  const { r: _r, s: _s, v: _v, yParity: _yParity, ...unsigned } = parseTransaction(raw)
  return {
    sender: await recoverTransactionAddress({ serializedTransaction: raw as never }),
    signingPayload: serializeTransaction(unsigned as never),
    calls: [unsigned as Call],
  }
}

export function reserveCallsOf(calls: readonly Call[]) {
  return calls.filter((call) => !!call.to && isAddressEqual(call.to, Addresses.tip20ChannelReserve))
}

export function decodeReserveCall(call: Call) {
  const data = call.data ?? call.input
  if (!data) return undefined
  try {
    return decodeFunctionData({ abi: Abis.tip20ChannelReserve, data })
  } catch {
    return undefined
  }
}

/** Tokens that `open` and `topUp` calls move into the reserve. */
export function reservedTokensOf(
  calls: readonly ReturnType<typeof decodeReserveCall>[],
): Address[] {
  return calls.flatMap((call) => {
    if (call?.functionName === 'open') return [call.args[2]]
    if (call?.functionName === 'topUp') return [call.args[0].token]
    return []
  })
}

export function callsOf(request: CallRequest | undefined): readonly Call[] {
  if (!request) return []
  return request.calls ?? [request]
}

/**
 * Sets the gas of an `eth_fillTransaction` result to `gas` (when known) plus `extraGas`: what the
 * calls were estimated to use, and what a key authorization adds.
 */
export function withGas(
  response: RpcResponse,
  gas: bigint | undefined,
  extraGas: bigint,
): RpcResponse {
  const tx = (response.result as { tx?: { gas?: Hex } } | undefined)?.tx
  if (gas === undefined || !tx?.gas) return raiseFilledGas(response, extraGas)
  tx.gas = numberToHex(gas + extraGas)
  return response
}

/** Adds `extraGas` to the gas of an `eth_fillTransaction` result (other results pass through). */
export function raiseFilledGas(response: RpcResponse, extraGas: bigint): RpcResponse {
  const tx = (response.result as { tx?: { gas?: Hex } } | undefined)?.tx
  if (extraGas > 0n && tx?.gas) tx.gas = numberToHex(BigInt(tx.gas) + extraGas)
  return response
}

export function mappingSlot(key: Address, slot: bigint): Hex {
  return keccak256(encodeAbiParameters([{ type: 'address' }, { type: 'uint256' }], [key, slot]))
}

export function allowanceSlot(owner: Address, spender: Address): Hex {
  const inner = mappingSlot(owner, tip20AllowanceSlot)
  return keccak256(
    encodeAbiParameters([{ type: 'address' }, { type: 'bytes32' }], [spender, inner]),
  )
}

/** The gas {@link keyAuthorizationGas} and {@link callScopeEntryGas} add for `authorization`. */
export function keyAuthorizationGasOf(authorization: unknown): bigint {
  if (!authorization) return 0n
  const { allowedCalls = [] } = authorization as {
    allowedCalls?: readonly { selectorRules?: readonly { recipients?: readonly unknown[] }[] }[]
  }
  const entries = allowedCalls.reduce(
    (count, { selectorRules = [] }) =>
      count +
      1 +
      selectorRules.reduce((rules, { recipients = [] }) => rules + 1 + recipients.length, 0),
    0,
  )
  return keyAuthorizationGas + callScopeEntryGas * BigInt(entries)
}

/**
 * Storage slot of the TIP-20 `allowance[owner][spender]` mapping in anvil's Tempo token
 * precompiles (found by approving and probing storage).
 */
const tip20AllowanceSlot = 10n

/**
 * Gas added for a key authorization in the transaction: the fill leaves out its cost (a transfer
 * that provisions an access key used ~817k gas against the ~784k viem asked for), and anvil
 * silently drops a transaction with too little gas for it instead of failing it.
 */
const keyAuthorizationGas = 1_000_000n

/**
 * Gas added per stored entry of a key authorization's call scopes (each target, selector rule and
 * recipient), which the fill leaves out too: one scope of one selector and one recipient took
 * ~3.57 M gas in all against ~1.05 M for an unscoped authorization.
 */
const callScopeEntryGas = 1_000_000n

export type RpcMessage = { jsonrpc: '2.0'; id?: unknown; method: string; params?: unknown[] }

export type RpcResponse = { jsonrpc: '2.0'; id?: unknown; result?: unknown; error?: unknown }

export type Call = {
  to?: Address | null | undefined
  data?: Hex | undefined
  input?: Hex | undefined
}

export type CallRequest = Call & {
  from?: Address | undefined
  keyId?: Address | undefined
  nonce?: Hex | undefined
  nonceKey?: Hex | undefined
  feeToken?: Address | undefined
  calls?: readonly Call[] | undefined
  keyAuthorization?: unknown
}
