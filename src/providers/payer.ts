import { Proof } from 'mppx/tempo'
import type { Account, Address } from 'viem'
import { signerOf } from '../reserve/transactions.js'
import { accessKeyOf, type KeyState } from './accessKey.js'

/**
 * Who pays, resolved once per provider from its account and chain, and handed to every payment
 * path (a charge, a channel's open, top-up and vouchers) rather than the account itself.
 */
export type Payer = {
  /** The account as given: it signs the transactions, vouchers and proofs. */
  account: Account
  /** The wallet the money leaves: a channel's `payer`, whose balances are checked. */
  address: Address
  /** Who signs the vouchers: an access key signs them itself, else the wallet. */
  signer: Address
  /** The credential's `source`: the payer's DID on the chain. */
  source: string
  /**
   * The access key's registration on the chain and the gate of its payments, shared by every
   * provider paying with the same account object; `undefined` unless `account` is a `viem/tempo`
   * access key. Its keychain entry is read per payment, in the key's turn (`KeyBegun`).
   */
  key: KeyState | undefined
}

/**
 * The payer of `account` on chain `chainId`.
 *
 * @example
 * ```ts
 * const payer = payerOf(account, client.chain.id)
 * const { data, descriptor } = openCall(payer, request, deposit)
 * ```
 */
export function payerOf(account: Account, chainId: number): Payer {
  return {
    account,
    address: account.address,
    signer: signerOf(account),
    source: Proof.proofSource({ address: account.address, chainId }),
    key: accessKeyOf(account, chainId),
  }
}
