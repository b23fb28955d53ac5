import type { Challenge } from 'mppx'
import type { Chain } from 'viem'
import type { PaymentProvider } from '../providers/PaymentProvider.js'

/**
 * What this module takes from `viem-mpp/node`, loaded lazily (`node/defaultProvider.ts` is held
 * to it): named here rather than as the entry's type, so that nothing here depends on the entry.
 */
export type NodeEntry = {
  discoverProvider(options: {
    chain: Chain
    challenges: readonly Challenge.Challenge[]
    paidUrl?: string | undefined
  }): Promise<PaymentProvider | undefined>
}

/**
 * Node's default: keys are looked for on the first 402, through `viem-mpp/node` (its
 * `discoverProvider`: a session where offered, else a charge). The specifier
 * is not a literal, so that bundlers leave Node-only code out of browser builds; elsewhere there
 * is no default.
 */
const nodeEntry = 'viem-mpp/node'

/**
 * The default provider of a transport for `chain` that pays the endpoint at `url` (the chain's
 * own RPC when none is given, as http() does).
 */
export function defaultProvider(
  chain: Chain | undefined,
  url: string | undefined,
): (challenges: readonly Challenge.Challenge[]) => Promise<PaymentProvider | undefined> {
  const inNode = typeof process !== 'undefined' && !!process.versions?.node
  if (!inNode || !chain) return async () => undefined
  const paidUrl = url ?? chain.rpcUrls.default.http[0]
  // One search at a time, shared by concurrent 402s; searched again until a key is found (no key
  // throws `PaymentRequiredError`), since one may be set up while the program runs.
  let search: Promise<PaymentProvider | undefined> | undefined
  return (challenges) => {
    search ??= import(/* @vite-ignore */ nodeEntry)
      .then((node: NodeEntry) => node.discoverProvider({ chain, challenges, paidUrl }))
      .catch((error: unknown) => {
        search = undefined
        throw error
      })
    return search
  }
}
