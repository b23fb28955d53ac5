/**
 * The gas a Tempo node would fill in for a transaction of several calls, which anvil cannot
 * report: each call estimated alone, and the account's creation counted as a Tempo node counts it.
 */
import { type Address, type Hex, maxUint256 } from 'viem'
import type { NodeRpc } from './nodeCalls.js'
import { type Call, type CallRequest, callsOf } from './transactions.js'

/** The intrinsic gas of a transaction: counted once however many calls it makes. */
const baseTransactionGas = 21_000n

/** A request whose sender is known: what an estimate needs. */
type SenderRequest = CallRequest & { from: Address }

/** A call as a request lists it, with the value it may send. */
type ValueCall = Call & { value?: Hex }

/**
 * The gas a Tempo node would fill in for `request`: anvil's fill (and its estimate of a batch of
 * calls) reports a fixed 771,000 whatever the calls, which made every fee quote several times
 * what was paid. Each call is estimated alone (anvil estimates a single call for real), as a
 * transaction past its account's creation, less the base cost of a transaction counted once per
 * call beyond the first; a transaction that creates its sender's account (the protocol nonce 0)
 * adds what that costs (what the first call's estimate at nonce 0 adds), and an expiring-nonce
 * one never does. `undefined` if a call cannot be estimated (it would fail): the fill's figure
 * stays.
 *
 * @example
 * ```ts
 * const gas = await estimateCalls(rpc, { from, calls })
 * ```
 */
export async function estimateCalls(
  rpc: NodeRpc,
  request: SenderRequest,
): Promise<bigint | undefined> {
  const calls = callsOf(request) as ValueCall[]
  try {
    let gas = 0n
    for (const call of calls) gas += await estimateCall(rpc, request, call, '0x1')
    gas -= baseTransactionGas * BigInt(calls.length - 1)
    const [first] = calls
    if (first && (await createsAccount(rpc, request)))
      gas +=
        (await estimateCall(rpc, request, first, '0x0')) -
        (await estimateCall(rpc, request, first, '0x1'))
    return gas
  } catch {
    return undefined
  }
}

/**
 * One call of `request` estimated alone at `nonce`, as the plain call anvil estimates for real:
 * `nonce` tells whether the estimate includes creating the sender's account.
 */
async function estimateCall(
  rpc: NodeRpc,
  { from, feeToken }: SenderRequest,
  { to, data, input, value }: ValueCall,
  nonce: Hex,
): Promise<bigint> {
  return BigInt(
    (await rpc('eth_estimateGas', [
      {
        from,
        to,
        data: data ?? input,
        nonce,
        ...(value ? { value } : {}),
        ...(feeToken ? { feeToken } : {}),
      },
    ])) as Hex,
  )
}

/**
 * Whether a transaction of `request` may pay for creating its sender's account: one on the
 * protocol nonce at 0 does; an expiring-nonce one never does; another nonce lane is counted as
 * if it did (its own first use has a cost of its kind).
 */
async function createsAccount(rpc: NodeRpc, request: SenderRequest): Promise<boolean> {
  const lane = request.nonceKey === undefined ? 0n : BigInt(request.nonceKey)
  if (lane === maxUint256) return false
  if (lane !== 0n) return true
  const nonce =
    request.nonce ?? ((await rpc('eth_getTransactionCount', [request.from, 'pending'])) as Hex)
  return BigInt(nonce) === 0n
}
