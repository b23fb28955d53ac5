import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient, custom, getAddress, http } from 'viem'
import { Addresses } from 'viem/tempo'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import {
  ChannelError,
  type ChannelStore,
  listChannels,
  memoryChannelStore,
  session,
} from '../../src/index.js'
import { fileChannelStore } from '../../src/node/index.js'
import { channelHelpers } from '../support/channels.js'
import { useLocalnet } from '../support/localnet.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, paidClient, chainClient, keyOf } = sessionHelpers(localnet)
const { threeCalls } = channelHelpers(localnet)

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'viem-mpp-channels-list-'))
})
afterEach(() => rm(dir, { recursive: true, force: true }))

/**
 * Three paid calls from dev account `index` on a new session with `store`; the provider is
 * returned still holding the channel.
 */
async function threeCallsHeld(index: number, store: ChannelStore) {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const provider = session({ account: accountOf(index), client: chainClient(), store })
  const client = paidClient(rpc.url, { provider })
  for (let i = 0; i < 3; i++) await client.getChainId()
  return { rpc, provider }
}

describe('listChannels', () => {
  test('after three paid calls: the channel, its deposit and cumulative amount exact', async () => {
    const store = memoryChannelStore()
    const { rpc, provider } = await threeCallsHeld(0, store)
    const payer = accountOf(0).address
    const stored = await store.forOrigin?.(rpc.url).get(keyOf(rpc.payee))

    // While the provider holds the channel, the store knows the mark it may sign up to (10
    // prices ahead of the first voucher), not what it signed.
    const [held] = await listChannels({ store })
    expect(held).toMatchObject({
      cumulativeAmount: 10_000n,
      exact: false,
      lease: { live: true },
      refundable: 990_000n,
    })
    // Released (as at the end of a script): exactly what was signed.
    await provider.release()
    const [channel, ...others] = await listChannels({ store })
    expect(others).toEqual([])
    expect(channel).toEqual({
      channelId: stored?.channelId,
      origin: new URL(rpc.url).origin,
      chainId: localnet.net.chain.id,
      escrow: Addresses.tip20ChannelReserve,
      payer,
      payee: rpc.payee,
      authorizedSigner: payer,
      currency: getAddress(localnet.net.currency),
      deposit: 1_000_000n,
      cumulativeAmount: 3_000n,
      exact: true,
      lease: undefined,
      acceptedAmount: undefined,
      settledAmount: undefined,
      state: 'open',
      withdrawableAt: undefined,
      refundable: 997_000n,
    })

    // Refreshed from the chain: nothing settled yet, no close requested.
    const [fresh] = await listChannels({ store, client: chainClient() })
    expect(fresh).toMatchObject({ deposit: 1_000_000n, settledAmount: 0n, state: 'open' })
    expect(fresh?.refundable).toBe(997_000n)
    // Another payer's filter sees nothing.
    expect(await listChannels({ store, payer: accountOf(1).address })).toEqual([])
  })

  test('fileChannelStore: every origin of the SQLite table, as its entries read', async () => {
    const path = join(dir, 'channels.db')
    const store = fileChannelStore(path)
    try {
      const { rpc, provider } = await threeCallsHeld(1, store)
      await provider.release()
      const stored = await store.forOrigin(rpc.url).get(keyOf(rpc.payee))
      const listed = await store.list()
      expect(listed).toEqual([
        {
          origin: new URL(rpc.url).origin,
          key: keyOf(rpc.payee),
          entry: stored,
          // Released: the mark comes down to what was signed.
          ledger: {
            mark: 3_000n,
            signed: 3_000n,
            spent: 3_000n,
            lease: undefined,
            openingUntil: undefined,
          },
        },
      ])

      const [channel] = await listChannels({ store: fileChannelStore(path), client: chainClient() })
      expect(channel).toMatchObject({
        channelId: stored?.channelId,
        origin: new URL(rpc.url).origin,
        deposit: 1_000_000n,
        cumulativeAmount: 3_000n,
        exact: true,
        settledAmount: 0n,
        state: 'open',
      })
    } finally {
      await store.close()
    }
  })

  test('an unreachable RPC: a typed one-line error', async () => {
    const store = memoryChannelStore()
    await threeCallsHeld(2, store)
    const client = createClient({
      chain: localnet.net.chain,
      transport: http('http://127.0.0.1:9/secret-key', { retryCount: 0 }),
    })
    const error = await listChannels({ store, client }).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(ChannelError)
    expect((error as ChannelError).reason).toBe('rpcUnreachable')
    expect((error as ChannelError).shortMessage).not.toContain('\n')
    expect(String((error as ChannelError).message)).not.toContain('secret-key')
  })
})

describe('listChannels, a large store', () => {
  test('40 channels are refreshed a few chain reads at a time, each exact', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const source = memoryChannelStore()
    await threeCalls(8, rpc.url, source)
    const [stored] = (await source.list?.()) ?? []
    if (!stored) throw new Error('no channel')
    const store = memoryChannelStore()
    for (let i = 0; i < 40; i++)
      await store.forOrigin?.(`http://127.0.0.${i + 1}:1`).set(stored.entry)
    const upstream = http(localnet.net.rpcUrl)({ chain: localnet.net.chain })
    let inFlight = 0
    let most = 0
    const client = createClient({
      chain: localnet.net.chain,
      transport: custom({
        async request(args) {
          most = Math.max(most, ++inFlight)
          try {
            return await upstream.request(args)
          } finally {
            inFlight--
          }
        },
      }),
    })
    const summaries = await listChannels({ store, client })
    expect(summaries).toHaveLength(40)
    for (const summary of summaries)
      expect(summary).toMatchObject({
        channelId: stored.entry.channelId,
        state: 'open',
        deposit: 1_000_000n,
        settledAmount: 0n,
      })
    expect(most).toBeLessThanOrEqual(8)
  })
})
