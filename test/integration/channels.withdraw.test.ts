import { createClient, custom, type Hex, http, parseEventLogs } from 'viem'
import { Abis, Addresses } from 'viem/tempo'
import { describe, expect, test } from 'vitest'
import {
  type ChannelProgress,
  type ChannelStore,
  ChannelStoreError,
  charge,
  closeChannel,
  listChannels,
  memoryChannelStore,
  session,
  withdrawChannel,
} from '../../src/index.js'
import { channelHelpers, channelRefusal } from '../support/channels.js'
import { tip20, useLocalnet } from '../support/localnet.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, paidClient, chainClient, plain, channelEvents, blockNumber } =
  sessionHelpers(localnet)
const { threeCalls, stateOf } = channelHelpers(localnet)

/** Three paid calls from dev account `index` on a new session with `store`; the server stops. */
async function threeCallsThenServerGone(index: number, store: ChannelStore) {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const channel = await threeCalls(index, rpc.url, store)
  await rpc.stop()
  return channel
}

describe('withdrawChannel', () => {
  test('server gone: requestClose once, withdraw once after the grace period, the deposit back', async () => {
    const store = memoryChannelStore()
    const { channelId } = await threeCallsThenServerGone(0, store)
    const payer = accountOf(0).address
    const from = await blockNumber()
    const params = { store, channelId, account: accountOf(0), client: chainClient() }
    const progress: ChannelProgress[] = []

    const requested = await withdrawChannel({
      ...params,
      onProgress: (event) => progress.push(event),
    })
    const { closeRequestedAt } = await stateOf(channelId)
    expect(closeRequestedAt).toBeGreaterThan(0)
    expect(requested).toEqual({
      channelId,
      state: 'closeRequested',
      withdrawableAt: closeRequestedAt + 900,
      txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/),
    })
    expect(progress).toEqual([
      { type: 'transaction', hash: requested.txHash, label: 'requestClose' },
      { type: 'waiting', until: closeRequestedAt + 900, label: 'close grace period' },
    ])
    const [listed] = await listChannels({ store, client: chainClient() })
    expect(listed).toMatchObject({
      state: 'closeRequested',
      withdrawableAt: closeRequestedAt + 900,
    })

    // Again, inside the grace period: nothing sent, the same answer.
    expect(await withdrawChannel(params)).toEqual({ ...requested, txHash: undefined })
    await localnet.net.increaseTime(800)
    expect(await withdrawChannel(params)).toEqual({ ...requested, txHash: undefined })

    await localnet.net.increaseTime(200)
    const withdrawn = await withdrawChannel(params)
    expect(withdrawn).toEqual({
      channelId,
      state: 'closed',
      // The server never settled: the whole deposit comes back.
      refunded: 1_000_000n,
      txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/),
    })
    const receipt = await plain().getTransactionReceipt({ hash: withdrawn.txHash as Hex })
    const refunds = parseEventLogs({ abi: tip20, logs: receipt.logs, eventName: 'Transfer' })
      .filter(({ args }) => args.from.toLowerCase() === Addresses.tip20ChannelReserve)
      .map(({ args }) => [args.to, args.amount])
    expect(refunds).toEqual([[payer, 1_000_000n]])
    expect(await stateOf(channelId)).toEqual({ settled: 0n, deposit: 0n, closeRequestedAt: 0 })
    expect(await listChannels({ store })).toEqual([])

    // A fourth call: refused, typed; still one requestClose and one withdraw on chain.
    expect((await channelRefusal(withdrawChannel(params))).reason).toBe('unknownChannel')
    expect((await channelRefusal(withdrawChannel({ ...params, store: undefined }))).reason).toBe(
      'closed',
    )
    const logs = await plain().getLogs({
      address: Addresses.tip20ChannelReserve,
      fromBlock: from + 1n,
    })
    const names = parseEventLogs({ abi: Abis.tip20ChannelReserve, logs })
      .filter(({ args }) => (args as { channelId?: Hex }).channelId === channelId)
      .map(({ eventName }) => eventName)
    expect(names).toEqual(['CloseRequested', 'ChannelClosed'])
    expect(await channelEvents('ChannelClosed', payer, from)).toHaveLength(1)
  })

  test('without a store: the channel is found from its ChannelOpened log', async () => {
    const { channelId } = await threeCallsThenServerGone(1, memoryChannelStore())
    const requested = await withdrawChannel({
      channelId,
      account: accountOf(1),
      client: chainClient(),
    })
    expect(requested.state).toBe('closeRequested')
  })

  test('bad input: another payer, an unknown id — typed, nothing sent', async () => {
    const store = memoryChannelStore()
    const { channelId } = await threeCallsThenServerGone(2, store)
    const from = await blockNumber()
    const other = await channelRefusal(
      withdrawChannel({ store, channelId, account: accountOf(3), client: chainClient() }),
    )
    expect(other.reason).toBe('notPayer')
    const unknown = await channelRefusal(
      withdrawChannel({
        channelId: `0x${'22'.repeat(32)}`,
        account: accountOf(2),
        client: chainClient(),
      }),
    )
    expect(unknown.reason).toBe('unknownChannel')
    const deadRpc = createClient({
      chain: localnet.net.chain,
      transport: http('http://127.0.0.1:9/k3y', { retryCount: 0 }),
    })
    const unreachable = await channelRefusal(
      withdrawChannel({ store, channelId, account: accountOf(2), client: deadRpc }),
    )
    expect(unreachable.reason).toBe('rpcUnreachable')
    expect(unreachable.message).not.toContain('k3y')
    expect(await listChannels({ store })).toHaveLength(1)
    expect(await stateOf(channelId)).toEqual({
      settled: 0n,
      deposit: 1_000_000n,
      closeRequestedAt: 0,
    })
    expect(await blockNumber()).toBeGreaterThanOrEqual(from)
    expect(await channelEvents('ChannelClosed', accountOf(2).address, from)).toEqual([])
  })

  test('after moving the clock 1000 s, paid calls (session open, vouchers, a charge) still work', async () => {
    const before = Number((await plain().getBlock()).timestamp)
    const now = await localnet.net.increaseTime(1000)
    expect(now).toBeGreaterThanOrEqual(before + 1000)

    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const provider = session({ account: accountOf(6), client: chainClient() })
    const client = paidClient(rpc.url, { provider })
    for (let i = 0; i < 2; i++) expect(await client.getChainId()).toBe(localnet.net.chain.id)
    expect(await channelEvents('ChannelOpened', accountOf(6).address, from)).toHaveLength(1)
    await rpc.stop()

    const charged = await localnet.startPaidRpc({ intent: 'charge' })
    const chargeClient = paidClient(charged.url, {
      provider: charge({ account: accountOf(7), client: chainClient() }),
    })
    expect(await chargeClient.getChainId()).toBe(localnet.net.chain.id)
    expect(charged.counters.payments.charge).toBe(1)
  })
})

describe('withdrawChannel, concurrent', () => {
  test('two calls at once, then two withdraws at once: each call succeeds, one withdraw, the refund exact', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const store = memoryChannelStore()
    const { channelId } = await threeCalls(3, rpc.url, store)
    await rpc.stop()
    const payer = accountOf(3).address
    const from = await blockNumber()
    const params = { store, channelId, account: accountOf(3), client: chainClient() }

    // requestClose is idempotent on chain: both calls succeed and agree on the time.
    const requested = await Promise.all([withdrawChannel(params), withdrawChannel(params)])
    const { closeRequestedAt } = await stateOf(channelId)
    expect(closeRequestedAt).toBeGreaterThan(0)
    for (const result of requested)
      expect(result).toMatchObject({
        state: 'closeRequested',
        withdrawableAt: closeRequestedAt + 900,
      })

    await localnet.net.increaseTime(1000)
    const withdrawn = await Promise.allSettled([withdrawChannel(params), withdrawChannel(params)])
    expect(withdrawn.map(({ status }) => status)).toEqual(['fulfilled', 'fulfilled'])
    for (const result of withdrawn)
      expect((result as PromiseFulfilledResult<unknown>).value).toMatchObject({
        channelId,
        state: 'closed',
        refunded: 1_000_000n,
      })
    const closes = await channelEvents('ChannelClosed', payer, from)
    expect(closes).toHaveLength(1)
    expect(closes[0]?.args).toMatchObject({ settledToPayee: 0n, refundedToPayer: 1_000_000n })
    expect(await stateOf(channelId)).toEqual({ settled: 0n, deposit: 0n, closeRequestedAt: 0 })
    expect(await listChannels({ store })).toEqual([])
  })
})

describe('withdrawChannel, another process first', () => {
  test('withdrawn by another process between the read and the send: closed, the refund from the chain, the entry removed', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const store = memoryChannelStore()
    const { channelId } = await threeCalls(0, rpc.url, store)
    await rpc.stop()
    const account = accountOf(0)
    await withdrawChannel({ store, channelId, account, client: chainClient() })
    await localnet.net.increaseTime(1000)
    const from = await blockNumber()
    // The other process withdraws just before this one prepares its transaction.
    const upstream = http(localnet.net.rpcUrl)({ chain: localnet.net.chain })
    let competitor: Promise<unknown> | undefined
    const client = createClient({
      chain: localnet.net.chain,
      transport: custom({
        async request(args) {
          if (args.method === 'eth_fillTransaction' && !competitor) {
            competitor = withdrawChannel({ channelId, account, client: chainClient() })
            await competitor
          }
          return upstream.request(args)
        },
      }),
    })
    const result = await withdrawChannel({ store, channelId, account, client })
    expect(await competitor).toMatchObject({ state: 'closed', refunded: 1_000_000n })
    expect(result).toMatchObject({ channelId, state: 'closed', refunded: 1_000_000n })
    expect(await channelEvents('ChannelClosed', account.address, from)).toHaveLength(1)
    expect(await listChannels({ store })).toEqual([])
  })
})

describe('a tampered store entry', () => {
  test("an id that is not its descriptor's: refused as corrupt, no requestClose on the descriptor's channel", async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const ours = memoryChannelStore()
    const theirs = memoryChannelStore()
    await threeCalls(6, rpc.url, ours)
    await threeCalls(7, rpc.url, theirs)
    const [own] = (await ours.list?.()) ?? []
    const [other] = (await theirs.list?.()) ?? []
    if (!own || !other) throw new Error('no channels')
    // Another payer's channel id, with a descriptor of this payer's own channel.
    const store = memoryChannelStore()
    await store.forOrigin?.(rpc.url).set({ ...other.entry, descriptor: own.entry.descriptor })
    const params = {
      store,
      channelId: other.entry.channelId,
      account: accountOf(6),
      client: chainClient(),
    }

    await expect(withdrawChannel(params)).rejects.toBeInstanceOf(ChannelStoreError)
    await expect(closeChannel({ ...params, url: rpc.url })).rejects.toBeInstanceOf(
      ChannelStoreError,
    )
    expect((await stateOf(own.entry.channelId)).closeRequestedAt).toBe(0)
    expect((await stateOf(other.entry.channelId)).closeRequestedAt).toBe(0)
    expect(rpc.counters.payments.close).toBe(0)
  })
})
