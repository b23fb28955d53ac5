import { Challenge } from 'mppx'
import { entryKey } from 'mppx/client'
import {
  type Address,
  createClient,
  createPublicClient,
  type Hex,
  http,
  type LocalAccount,
  parseEventLogs,
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { Abis, Addresses } from 'viem/tempo'
import { expect } from 'vitest'
import { type ChannelEntry, type MppHttpTransportConfig, mppHttp } from '../../src/index.js'
import type { useLocalnet } from './localnet.js'

/** An address whose key nobody holds: the payee of fake sessions, an account never touched. */
export const nobody = '0x000000000000000000000000000000000000dEaD'

/** How many fake session challenges were made: each gets an id of its own. */
let challenges = 0

/** What session tests read and build on the localnet of `localnet` (looked up when called). */
export function sessionHelpers(localnet: ReturnType<typeof useLocalnet>) {
  const net = () => localnet.net
  /** A client on the localnet itself (never the paid endpoint), for reading the truth. */
  const plain = () =>
    createPublicClient({ chain: net().chain, transport: http(net().rpcUrl), cacheTime: 0 })

  /** The reserve's events of `name` for channels paid by `payer`, from block `fromBlock` on. */
  async function channelEvents<name extends 'ChannelOpened' | 'TopUp' | 'ChannelClosed'>(
    name: name,
    payer: Address,
    fromBlock: bigint,
  ) {
    const logs = await plain().getLogs({ address: Addresses.tip20ChannelReserve, fromBlock })
    return parseEventLogs({ abi: Abis.tip20ChannelReserve, logs, eventName: name }).filter(
      (log) => (log.args as { payer: Address }).payer.toLowerCase() === payer.toLowerCase(),
    )
  }

  return {
    plain,
    /** A chain client for providers: unpaid, on the localnet. */
    chainClient: () => createClient({ chain: net().chain, transport: http(net().rpcUrl) }),
    accountOf: (index: number) => privateKeyToAccount(net().accounts[index]!.privateKey),
    blockNumber: () => plain().getBlockNumber(),
    /** A public client on `url` through mppHttp, without caching, so every call is a request. */
    paidClient: (url: string, config: MppHttpTransportConfig = {}) =>
      createPublicClient({ chain: net().chain, transport: mppHttp(url, config), cacheTime: 0 }),
    channelEvents,
    /** Expects exactly one channel opened by `payer` from block `fromBlock` on, and gives its id. */
    async expectOneChannelOpened(payer: Address, fromBlock: bigint) {
      const opened = await channelEvents('ChannelOpened', payer, fromBlock)
      expect(opened).toHaveLength(1)
      return opened[0]!.args.channelId as Hex
    },
    /** mppx's key of the payer's channel to `payee` (pathUSD, the canonical reserve, this chain). */
    keyOf: (payee: Address) =>
      entryKey({
        descriptor: { payee, token: net().currency },
        escrow: Addresses.tip20ChannelReserve,
        chainId: net().chain.id,
      } as unknown as ChannelEntry),
    /**
     * A TIP-1034 session challenge (serialized) of a fake realm on this chain, 1000 a call paid
     * to `nobody`: well formed, but for the `request` fields given over the defaults, so that a
     * fake endpoint's test names only what it gets wrong.
     */
    sessionChallenge: (request: Record<string, unknown> = {}) =>
      Challenge.serialize(
        Challenge.from({
          id: `session-${++challenges}`,
          realm: 'fake',
          method: 'tempo',
          intent: 'session',
          request: {
            amount: '1000',
            currency: net().currency,
            recipient: nobody,
            suggestedDeposit: '1000000',
            methodDetails: {
              chainId: net().chain.id,
              escrowContract: Addresses.tip20ChannelReserve,
              sessionProtocol: 'v2',
            },
            ...request,
          },
          expires: new Date(Date.now() + 60_000).toISOString(),
        }),
      ),
  }
}

/** `account`, with every signature it makes recorded. */
export function recording(account: LocalAccount) {
  const signed: string[] = []
  const record =
    <args extends unknown[], value>(name: string, sign: (...args: args) => Promise<value>) =>
    (...args: args) => {
      signed.push(name)
      return sign(...args)
    }
  return {
    signed,
    account: {
      ...account,
      sign: record('sign', account.sign!),
      signMessage: record('signMessage', account.signMessage),
      signTransaction: record('signTransaction', account.signTransaction),
      signTypedData: record('signTypedData', account.signTypedData),
    } as LocalAccount,
  }
}
