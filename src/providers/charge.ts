import type { Challenge } from 'mppx'
import { tempo } from 'mppx/client'
import type { Account, Chain, Client, Transport } from 'viem'
import { z } from 'zod'
import { isPaidClient } from '../internal/paidTransportMarker.js'
import type { PaymentProvider } from './PaymentProvider.js'

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/) as unknown as z.ZodType<`0x${string}`>

/** The parts of a Tempo charge request (draft-tempo-charge-00) that the policy needs. */
const chargeRequestSchema = z.object({
  amount: z.string().regex(/^\d{1,78}$/),
  currency: address,
  recipient: address,
  methodDetails: z
    .object({
      chainId: z.number().int().optional(),
      supportedModes: z.array(z.string()).optional(),
    })
    .loose()
    .optional(),
})

export type ChargeParameters = {
  /** Pays: a local account, or a `viem/tempo` access-key account. */
  account: Account
  /**
   * A viem client for the chain, used to prepare the payment transaction. It must not use the
   * paid transport itself.
   */
  client: Client<Transport, Chain>
}

/**
 * Pays Tempo `charge` challenges: one TIP-20 transfer per payment, signed here and broadcast by
 * the server (pull mode), so that nothing moves unless the server accepts the credential.
 *
 * @example
 * ```ts
 * import { createPublicClient, http } from 'viem'
 * import { privateKeyToAccount } from 'viem/accounts'
 * import { tempo } from 'viem/chains'
 * import { charge, mppHttp } from 'viem-mpp'
 *
 * const account = privateKeyToAccount(process.env.TEMPO_PRIVATE_KEY as `0x${string}`)
 * const chainClient = createPublicClient({ chain: tempo, transport: http() })
 * const client = createPublicClient({
 *   chain: tempo,
 *   transport: mppHttp('https://rpc.example.com', {
 *     provider: charge({ account, client: chainClient }),
 *   }),
 * })
 * ```
 */
export function charge({ account, client }: ChargeParameters): PaymentProvider {
  if (isPaidClient(client))
    throw new Error('charge(): `client` must not use a paid (mppHttp) transport.')
  const chainId = client.chain.id
  const method = tempo.charge({
    account,
    getClient: () => client,
    mode: 'pull',
    expectedChainId: chainId,
  })

  const parse = (challenge: Challenge.Challenge) => {
    if (challenge.method !== 'tempo' || challenge.intent !== 'charge') return undefined
    const parsed = chargeRequestSchema.safeParse(challenge.request)
    if (!parsed.success) return undefined
    const { methodDetails } = parsed.data
    if (methodDetails?.chainId !== undefined && methodDetails.chainId !== chainId) return undefined
    // Push mode broadcasts before the server has accepted anything; only pull is paid here.
    if (methodDetails?.supportedModes && !methodDetails.supportedModes.includes('pull'))
      return undefined
    return parsed.data
  }

  return {
    acceptPayment: 'tempo/charge',
    supports: (challenge) => parse(challenge) !== undefined,
    async prepare({ challenge }) {
      const request = parse(challenge)
      if (!request) throw new Error(`Not a Tempo charge challenge on chain ${chainId}.`)
      return {
        quote: {
          method: 'tempo',
          intent: 'charge',
          amount: BigInt(request.amount),
          deposit: 0n,
          currency: request.currency,
          recipient: request.recipient,
          chainId,
        },
        authorize: () =>
          method.createCredential({ challenge: challenge as never, context: { mode: 'pull' } }),
        // A signed transfer can be broadcast by whoever holds it until it expires.
        bearer: true,
        // A charge keeps no local state: nothing to commit or undo.
        commit: async () => {},
        rollback: async () => {},
      }
    },
  }
}
