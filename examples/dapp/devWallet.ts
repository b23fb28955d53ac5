import { type Hex, type LocalAccount, UserRejectedRequestError } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'

/**
 * LOCALNET ONLY: a stand-in for the user's wallet. It is a local account built from a throwaway
 * key that the dev server created and funded on the localnet, and it asks in the page (Approve /
 * Reject) before it signs anything, as a wallet or a passkey prompt would. A refusal throws
 * viem's `UserRejectedRequestError` (code 4001), as EIP-1193 wallets do. A real dApp uses the
 * user's own root account instead, e.g. a passkey (`Account.fromWebAuthnP256` of `viem/tempo`),
 * and never holds a private key in the page.
 */
export function devWallet(privateKey: Hex, approve: () => Promise<boolean>): LocalAccount {
  const account = privateKeyToAccount(privateKey)
  const gated =
    <args extends unknown[], value>(sign: (...args: args) => Promise<value>) =>
    async (...args: args) => {
      if (!(await approve()))
        throw new UserRejectedRequestError(new Error('The user rejected the request.'))
      return sign(...args)
    }
  return {
    ...account,
    sign: gated(account.sign),
    signMessage: gated(account.signMessage),
    signTransaction: gated(account.signTransaction) as LocalAccount['signTransaction'],
    signTypedData: gated(account.signTypedData) as LocalAccount['signTypedData'],
  }
}
