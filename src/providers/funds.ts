import { type Address, type Chain, type Client, isAddressEqual, type Transport } from 'viem'
import { readContract } from 'viem/actions'
import { Abis } from 'viem/tempo'
import { PaymentRefusedError } from '../errors.js'
import type { KeychainEntry } from './accessKey.js'
import type { KeyCall } from './keyScopes.js'
import type { Payer } from './payer.js'

/**
 * Refuses, before anything is signed, a payment transaction the payer cannot make: one whose
 * `spends` of `token` (a charge's transfers, a channel's deposit or top-up) and most `fee` its
 * balances cannot cover, or that its access key may not make (revoked, expired, short of its
 * spending limits, or not allowed its `calls`). `amount` is the payment's quoted amount, for the
 * error.
 */
export async function assertAffordable(
  client: Client<Transport, Chain>,
  payer: Payer,
  {
    token,
    spends,
    spent = 'the payment',
    amount,
    fee,
    feeToken,
    calls,
    keychain,
  }: {
    token: Address
    spends: bigint
    /** What `spends` is, for the error: `the payment` (a charge), or `the deposit` (a channel's). */
    spent?: 'the payment' | 'the deposit' | undefined
    amount: bigint
    fee: bigint
    feeToken: Address | undefined
    /** The transaction's calls, for the access key's call scopes. */
    calls: readonly KeyCall[]
    /** The access key's keychain entry, if read for this payment already (`KeyBegun`). */
    keychain?: KeychainEntry | undefined
  },
) {
  await payer.key?.assertCanPay(
    client,
    { amount: spends, currency: token, fee, feeToken, calls },
    keychain,
  )
  const sameToken = !!feeToken && isAddressEqual(feeToken, token)
  const mostFee = { label: 'the most fee', amount: fee }
  const needs = [
    {
      token,
      needed: spends + (sameToken ? fee : 0n),
      parts: [{ label: spent, amount: spends }, ...(sameToken ? [mostFee] : [])],
    },
  ]
  if (fee > 0n && feeToken && !sameToken)
    needs.push({ token: feeToken, needed: fee, parts: [mostFee] })
  await Promise.all(
    needs.map(async (need) => {
      const balance = await readContract(client, {
        address: need.token,
        abi: Abis.tip20,
        functionName: 'balanceOf',
        args: [payer.address],
      })
      if (balance < need.needed)
        throw new PaymentRefusedError({
          reason: 'insufficientFunds',
          amount,
          fee,
          currency: token,
          feeToken,
          balance: { payer: payer.address, available: balance, ...need },
        })
    }),
  )
}
