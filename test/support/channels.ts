import { Session } from 'mppx/tempo'
import type { Hex } from 'viem'
import { Addresses } from 'viem/tempo'
import { expect } from 'vitest'
import { ChannelError, type ChannelStore, listChannels, session } from '../../src/index.js'
import type { useLocalnet } from './localnet.js'
import { sessionHelpers } from './sessions.js'

/** What channel-management tests build on the localnet of `localnet` (looked up when called). */
export function channelHelpers(localnet: ReturnType<typeof useLocalnet>) {
  const { accountOf, paidClient, chainClient, plain } = sessionHelpers(localnet)
  return {
    /**
     * Three paid calls from dev account `index` to `url` on a new session with `store`, then the
     * channel released, as at the end of a script: the store holds its exact ledger.
     */
    async threeCalls(index: number, url: string, store: ChannelStore) {
      const provider = session({ account: accountOf(index), client: chainClient(), store })
      const client = paidClient(url, { provider })
      for (let i = 0; i < 3; i++) await client.getChainId()
      await provider.release()
      const [channel] = await listChannels({ store })
      if (!channel) throw new Error('no channel was stored')
      return channel
    },
    /** The channel's state on chain, read straight from the localnet. */
    stateOf: (channelId: Hex) =>
      Session.Precompile.Chain.getChannelState(plain(), channelId, Addresses.tip20ChannelReserve),
  }
}

/** The `ChannelError` that `promise` rejects with, checked to have a one-line shortMessage. */
export async function channelRefusal(promise: Promise<unknown>) {
  const error = await promise.then(
    () => {
      throw new Error('expected a ChannelError')
    },
    (error: unknown) => error,
  )
  expect(error).toBeInstanceOf(ChannelError)
  expect((error as ChannelError).shortMessage).not.toContain('\n')
  return error as ChannelError
}
