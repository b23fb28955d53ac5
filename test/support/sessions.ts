import { entryKey } from 'mppx/client'
import {
  type Address,
  createClient,
  createPublicClient,
  http,
  type LocalAccount,
  parseEventLogs,
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { Abis, Addresses } from 'viem/tempo'
import { type ChannelEntry, type MppHttpTransportConfig, mppHttp } from '../../src/index.js'
import type { useLocalnet } from './localnet.js'

/** What session tests read and build on the localnet of `localnet` (looked up when called). */
export function sessionHelpers(localnet: ReturnType<typeof useLocalnet>) {
  const net = () => localnet.net
  /** A client on the localnet itself (never the paid endpoint), for reading the truth. */
  const plain = () =>
    createPublicClient({ chain: net().chain, transport: http(net().rpcUrl), cacheTime: 0 })

  return {
    plain,
    /** A chain client for providers: unpaid, on the localnet. */
    chainClient: () => createClient({ chain: net().chain, transport: http(net().rpcUrl) }),
    accountOf: (index: number) => privateKeyToAccount(net().accounts[index]!.privateKey),
    blockNumber: () => plain().getBlockNumber(),
    /** A public client on `url` through mppHttp, without caching, so every call is a request. */
    paidClient: (url: string, config: MppHttpTransportConfig = {}) =>
      createPublicClient({ chain: net().chain, transport: mppHttp(url, config), cacheTime: 0 }),
    /** The reserve's events of `name` for channels paid by `payer`, from block `fromBlock` on. */
    async channelEvents<name extends 'ChannelOpened' | 'TopUp' | 'ChannelClosed'>(
      name: name,
      payer: Address,
      fromBlock: bigint,
    ) {
      const logs = await plain().getLogs({ address: Addresses.tip20ChannelReserve, fromBlock })
      return parseEventLogs({ abi: Abis.tip20ChannelReserve, logs, eventName: name }).filter(
        (log) => (log.args as { payer: Address }).payer.toLowerCase() === payer.toLowerCase(),
      )
    },
    /** mppx's key of the payer's channel to `payee` (pathUSD, the canonical reserve, this chain). */
    keyOf: (payee: Address) =>
      entryKey({
        descriptor: { payee, token: net().currency },
        escrow: Addresses.tip20ChannelReserve,
        chainId: net().chain.id,
      } as unknown as ChannelEntry),
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
