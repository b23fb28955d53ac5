import type { Address, Hex } from 'viem'

/** What the dev server tells the page (`/config.json`): the localnet's endpoints and limits. */
export type DappConfig = {
  /** The paid JSON-RPC endpoint (another origin: it sends CORS headers). */
  paidRpcUrl: string
  /** The chain's own, unpaid RPC, proxied by the dev server on the page's origin. */
  chainRpcPath: string
  chainId: number
  /** The payment currency (pathUSD on the localnet), a 6-decimal USD token. */
  currency: Address
  /** The paid endpoint's payee. */
  payee: Address
  /** LOCALNET ONLY: the throwaway key of the dev wallet, funded by the dev server. */
  devWalletKey: Hex
  /** What the access key may spend over its life, in base units (fees included). */
  keyLimit: string
  /** The most one channel locks, in base units. */
  maxDeposit: string
  /** The most this page spends per visit (payments and their most fees), in base units. */
  budget: string
}
