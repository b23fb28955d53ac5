import type { Challenge } from 'mppx'
import type { Chain } from 'viem'
import type { PaymentProvider } from '../providers/PaymentProvider.js'

/**
 * Node's default: keys are looked for on the first 402, through `viem-mpp/node`. The specifier
 * is not a literal, so that bundlers leave Node-only code out of browser builds; elsewhere there
 * is no default.
 */
const nodeEntry = 'viem-mpp/node'

export function defaultProvider(
  chain: Chain | undefined,
): (challenges: readonly Challenge.Challenge[]) => Promise<PaymentProvider | undefined> {
  const inNode = typeof process !== 'undefined' && !!process.versions?.node
  if (!inNode || !chain) return async () => undefined
  // One search at a time, shared by concurrent 402s; searched again until a key is found, since
  // one may be set up while the program runs.
  let search: Promise<PaymentProvider | undefined> | undefined
  return (challenges) => {
    search ??= import(/* @vite-ignore */ nodeEntry)
      .then((node: typeof import('../node/index.js')) =>
        node.discoverProvider({ chain, challenges }),
      )
      .then((provider) => {
        if (!provider) search = undefined
        return provider
      })
      .catch((error: unknown) => {
        search = undefined
        throw error
      })
    return search
  }
}
