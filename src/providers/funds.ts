import {
  type Account,
  type Address,
  type Chain,
  type Client,
  isAddressEqual,
  type Transport,
} from 'viem'
import { readContract } from 'viem/actions'
import { Abis } from 'viem/tempo'
import { PaymentRefusedError } from '../errors.js'
import { assertAccessKeyCanPay } from './accessKey.js'

/**
 * Refuses, before anything is signed, a payment transaction the payer cannot make: one whose
 * `spends` of `token` (a charge's transfers, a channel's deposit or top-up) and most `fee` its
 * balances cannot cover, or that its access key may not make (revoked, expired, or short of its
 * spending limits). `amount` is the payment's quoted amount, for the error.
 */
export async function assertAffordable(
  client: Client<Transport, Chain>,
  {
    account,
    token,
    spends,
    amount,
    fee,
    feeToken,
  }: {
    account: Account
    token: Address
    spends: bigint
    amount: bigint
    fee: bigint
    feeToken: Address | undefined
  },
) {
  await assertAccessKeyCanPay(client, account, { amount: spends, currency: token, fee, feeToken })
  const sameToken = !!feeToken && isAddressEqual(feeToken, token)
  const needs = [{ token, needed: spends + (sameToken ? fee : 0n) }]
  if (fee > 0n && feeToken && !sameToken) needs.push({ token: feeToken, needed: fee })
  await Promise.all(
    needs.map(async (need) => {
      const balance = await readContract(client, {
        address: need.token,
        abi: Abis.tip20,
        functionName: 'balanceOf',
        args: [account.address],
      })
      if (balance < need.needed)
        throw new PaymentRefusedError({
          reason: 'insufficientFunds',
          amount,
          fee,
          currency: token,
          feeToken,
          balance: { token: need.token, available: balance, needed: need.needed },
        })
    }),
  )
}
