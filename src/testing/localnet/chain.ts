import { type Address, type Client, defineChain, maxUint256 } from 'viem'
import { getBlock } from 'viem/actions'
import { tempoLocalnet } from 'viem/chains'
import { Addresses } from 'viem/tempo'

import { hardfork } from './hardfork.js'

export { hardfork }

/** Pre-T11 nodes accept an expiring nonce only within 30 s of the block timestamp. */
const expiringNonceWindow = 25

/**
 * With the nonce pinned to 0, two identical transactions prepared in the same second would be one
 * and the same transaction. A random `validAfter` up to this many seconds in the past keeps them
 * apart (viem keeps them apart with a random nonce, which pre-T11 nodes refuse).
 */
const validAfterSpread = 2 ** 24

const [prepareTempoTransaction, prepareOptions] = tempoLocalnet.prepareTransactionRequest

/**
 * A viem chain for the anvil Tempo localnet at `rpcUrl`: viem's `tempoLocalnet` with the chain id,
 * hardfork and URL of the running node, whose prepared expiring-nonce transactions satisfy the
 * pre-T11 rules anvil enforces (nonce 0, `validBefore` at most 25 s ahead of the node's latest
 * block, so that they stay valid after `Localnet.increaseTime`) instead of viem's
 * defaults (a random nonce, 270 s), which anvil rejects, and stay distinct through a random
 * `validAfter` in the past.
 *
 * Fees are paid in `feeToken` (pathUSD by default), as on a Tempo network: every transaction is
 * then a Tempo transaction, and an account funded with USD tokens only can send with viem's
 * defaults. Without one (`chain.extend({ feeToken: undefined })`), viem sends plain EIP-1559
 * transactions, which anvil charges in its native balance. A transaction's own `feeToken` takes
 * precedence.
 *
 * @example
 * ```ts
 * import { createPublicClient, http } from 'viem'
 * import { defineLocalnetChain } from 'viem-mpp/testing'
 *
 * const chain = defineLocalnetChain({ id: 1337, rpcUrl: 'http://127.0.0.1:8545' })
 * const client = createPublicClient({ chain, transport: http() })
 * ```
 */
export function defineLocalnetChain({
  id,
  rpcUrl,
  feeToken = Addresses.pathUsd,
}: {
  id: number
  rpcUrl: string
  /** TIP-20 token that pays transaction fees. @default pathUSD */
  feeToken?: Address | undefined
}) {
  return defineChain({
    ...tempoLocalnet,
    id,
    hardfork,
    feeToken,
    rpcUrls: { default: { http: [rpcUrl], webSocket: [rpcUrl.replace(/^http(s?):/i, 'ws$1:')] } },
    prepareTransactionRequest: [
      async (request, context) => {
        const prepared = await prepareTempoTransaction?.(request, context)
        if (!prepared) return prepared
        const tempoRequest = prepared as typeof prepared & {
          nonceKey?: bigint | number | 'expiring'
          validBefore?: number
          validAfter?: number
        }
        if (
          context.phase !== 'afterFillTransactionError' &&
          (tempoRequest.nonceKey === maxUint256 || tempoRequest.nonceKey === 'expiring')
        ) {
          // The node checks the window against its own block time, which a test may have moved
          // ahead of the wall clock (`Localnet.increaseTime`).
          const now = await chainTime(context.client)
          const latest = now + expiringNonceWindow
          const requested = tempoRequest.validBefore
          tempoRequest.nonce = 0
          // A requested bound already past on this chain was reckoned by the wall clock.
          tempoRequest.validBefore =
            requested !== undefined && requested > now ? Math.min(requested, latest) : latest
          tempoRequest.validAfter ??= now - 60 - randomBelow(validAfterSpread)
        }
        return tempoRequest
      },
      prepareOptions,
    ],
  })
}

/** The latest block's timestamp (unix seconds): the node's clock, not this machine's. */
async function chainTime(client: Client) {
  const { timestamp } = await getBlock(client, { blockTag: 'latest' })
  return Number(timestamp)
}

function randomBelow(limit: number) {
  const [random = 0] = crypto.getRandomValues(new Uint32Array(1))
  return random % limit
}

export type LocalnetChain = ReturnType<typeof defineLocalnetChain>
