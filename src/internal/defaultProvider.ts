import type { Challenge } from 'mppx'
import type { Chain } from 'viem'
import type { PaymentProvider } from '../providers/PaymentProvider.js'

/**
 * The most one payment may cost when `mppHttp` pays with its default provider and no `maxAmount`
 * is given: 1 USD, in base units of a TIP-20 USD token (6 decimals). That provider pays with a key
 * found on the machine, for whatever server the transport points at, so it is capped by default.
 */
export const defaultMaxAmount = 1_000_000n

/**
 * The most a session channel of `mppHttp`'s default provider may hold: 1 USD (its opening deposit
 * and its top-ups together, in base units of a 6-decimal TIP-20 USD token), whatever deposit the
 * server suggests. The channel is kept in Tempo's channel database and reused by later runs;
 * when it is spent, the default provider refuses further session payments
 * (`PaymentRefusedError`, `maxDeposit`). Each deposit or top-up is also within `maxAmount`
 * (`defaultMaxAmount` unless given).
 */
export const defaultMaxDeposit = 1_000_000n

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
      .then((node: typeof import('../node/index.js')) =>
        node.discoverProvider({ chain, challenges, paidUrl }),
      )
      .catch((error: unknown) => {
        search = undefined
        throw error
      })
    return search
  }
}
