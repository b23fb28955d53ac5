import type { Hex, LocalAccount } from 'viem'
import { describe, expect, onTestFinished, test } from 'vitest'
import {
  type ChannelStore,
  listChannels,
  memoryChannelStore,
  PaymentFailedError,
  type PaymentQuote,
  PaymentRefusedError,
  RecoveredChannelError,
  session,
  syncChannels,
} from '../../src/index.js'
import { channelHelpers } from '../support/channels.js'
import { useLocalnet } from '../support/localnet.js'
import {
  type PaidPayload,
  problemAnswer,
  recordingProxy,
  refusingProxy,
  staleVoucherAnswer,
  startProxy,
} from '../support/proxy.js'
import { recording, sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, paidClient, chainClient, channelEvents, blockNumber, keyOf } =
  sessionHelpers(localnet)
const { threeCalls } = channelHelpers(localnet)

/**
 * A channel of dev account `index` that three calls paid on (the server holds 3000), recovered
 * by `syncChannels` into a new store, and a proxy in front of the server that records every
 * credential it is sent (stopped when the test ends, so tests need no cleanup of their own).
 * With `snapshots: false` the server answers as one that sends no session snapshots: where it
 * stands on the channel must then be searched for.
 */
async function recoveredChannel(index: number, { snapshots = true } = {}) {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const account = accountOf(index)
  const from = await blockNumber()
  const first = paidClient(rpc.url, {
    provider: session({ account, client: chainClient(), store: memoryChannelStore() }),
  })
  for (let i = 0; i < 3; i++) await first.getChainId()
  const store = memoryChannelStore()
  const { added } = await syncChannels({ store, client: chainClient(), payer: account.address })
  const [channel] = added
  if (!channel) throw new Error('nothing recovered')
  const proxy = await recordingProxy(rpc.url, { snapshots })
  onTestFinished(() => proxy.stop())
  const { account: signer, signed } = recording(account as LocalAccount)
  const provider = session({ account: signer, client: chainClient(), store })
  return { rpc, account, from, store, channel, credentials: proxy.paid, proxy, signed, provider }
}

type Recovered = Awaited<ReturnType<typeof recoveredChannel>>

/** The store's records, as `list()` gives them. */
const recordsOf = async (store: ChannelStore) => (await store.list?.()) ?? []

/** The channel is taken up from the server's snapshot (held by this provider now), nothing signed on it. */
async function expectTakenUpUnsigned({
  rpc,
  store,
  channel,
  proxy,
}: Pick<Recovered, 'rpc' | 'store' | 'channel' | 'proxy'>) {
  expect(await recordsOf(store)).toEqual([
    expect.objectContaining({
      origin: new URL(proxy.url).origin,
      key: keyOf(rpc.payee),
      entry: expect.objectContaining({ channelId: channel.channelId }),
      ledger: expect.objectContaining({
        signed: 0n,
        lease: expect.objectContaining({ live: true }),
      }),
    }),
  ])
}

/**
 * A client of the recovered channel's proxy whose policy approves every payment; `approved` holds
 * how many signatures had been made when each was asked about.
 */
function approvingClient({
  proxy,
  provider,
  signed,
}: Pick<Recovered, 'proxy' | 'provider' | 'signed'>) {
  const approved: number[] = []
  const client = paidClient(proxy.url, {
    provider,
    onPaymentRequired: () => {
      approved.push(signed.length)
    },
  })
  return { client, approved }
}

/** What `close()` gives when the one channel it closes is `channelId`, with these amounts. */
const closedAlone = (channelId: Hex, amounts: { settled: bigint; refunded: bigint }) => [
  expect.objectContaining({ channelId, ...amounts }),
]

/** Each credential the proxy saw, as `[action, cumulativeAmount]`. */
const actionsAndAmounts = (credentials: PaidPayload[]) =>
  credentials.map(({ action, cumulativeAmount }) => [action, cumulativeAmount])

/**
 * A recovered channel (of a server without snapshots) behind a second proxy, stopped when the
 * test ends, that answers every voucher with `answer()` and keeps their amounts in `vouchers`;
 * and a client paying through it with the recovered provider: a catch-up the server makes fail.
 */
async function refusedCatchUp(index: number, answer: () => Response) {
  const recovered = await recoveredChannel(index, { snapshots: false })
  const refusing = await refusingProxy(recovered.proxy.url, 'voucher', answer)
  onTestFinished(() => refusing.stop())
  const client = paidClient(refusing.url, { provider: recovered.provider })
  return { ...recovered, refusing, vouchers: refusing.refused, client }
}

describe('a recovered channel, refused by the spending policy', () => {
  test('onPaymentRequired refuses: nothing signed, nothing sent, the channel taken up from the snapshot', async () => {
    const { rpc, store, channel, credentials, proxy, signed, provider } = await recoveredChannel(5)
    const quotes: PaymentQuote[] = []
    const client = paidClient(proxy.url, {
      provider,
      onPaymentRequired: ({ quote }) => {
        quotes.push(quote)
        return false
      },
    })
    const error = await client.getChainId().catch((error: unknown) => error)
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('onPaymentRequired')
    // What was asked about: one call's voucher, no deposit, no fee.
    expect(quotes).toHaveLength(1)
    expect(quotes[0]).toMatchObject({ amount: 1000n, deposit: 0n, fee: 0n })
    expect(signed).toEqual([])
    expect(credentials).toEqual([])
    await expectTakenUpUnsigned({ rpc, store, channel, proxy })
    // Refused again: the same, and the store still as synced.
    await expect(client.getChainId()).rejects.toBeInstanceOf(PaymentRefusedError)
    expect(signed).toEqual([])
    expect(credentials).toEqual([])
    // Released, the store holds where the server stands: 3000 signed and served, none above.
    await provider.release()
    expect(await listChannels({ store })).toEqual([
      expect.objectContaining({
        channelId: channel.channelId,
        origin: new URL(proxy.url).origin,
        cumulativeAmount: 3000n,
        exact: true,
      }),
    ])
  })

  test('maxAmount below the price: nothing signed, nothing sent, the channel taken up from the snapshot', async () => {
    const { rpc, store, channel, credentials, proxy, signed, provider } = await recoveredChannel(6)
    const client = paidClient(proxy.url, { provider, maxAmount: 999n })
    const error = await client.getChainId().catch((error: unknown) => error)
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect(error).toMatchObject({ reason: 'maxAmount', amount: 1000n })
    expect((error as PaymentRefusedError).metaMessages).toContain('Limit: 999')
    expect(signed).toEqual([])
    expect(credentials).toEqual([])
    await expectTakenUpUnsigned({ rpc, store, channel, proxy })
  })
})

describe('a recovered channel, approved', () => {
  test('with the server snapshot: only the call voucher is signed, after approval; closes exact', async () => {
    const recovered = await recoveredChannel(2)
    const { account, from, channel, credentials, signed, provider } = recovered
    const { client, approved } = approvingClient(recovered)
    expect(await client.getChainId()).toBe(localnet.net.chain.id)
    expect(approved).toEqual([0])
    expect(actionsAndAmounts(credentials)).toEqual([['voucher', '4000']])
    expect(signed).toEqual(['sign'])
    expect(await channelEvents('ChannelOpened', account.address, from)).toHaveLength(1)
    expect(await provider.close()).toEqual(
      closedAlone(channel.channelId, { settled: 4000n, refunded: 996_000n }),
    )
  })

  test('without snapshots: the search and the call voucher are signed after approval; no new channel; closes exact', async () => {
    const recovered = await recoveredChannel(7, { snapshots: false })
    const { rpc, account, from, store, channel, credentials, proxy, signed, provider } = recovered
    const { client, approved } = approvingClient(recovered)
    expect(await client.getChainId()).toBe(localnet.net.chain.id)
    // Asked before anything is signed.
    expect(approved).toEqual([0])
    // 1000 and 2000 stale, 3000 the server's own, then this call's 4000.
    expect(actionsAndAmounts(credentials)).toEqual([
      ['voucher', '1000'],
      ['voucher', '2000'],
      ['voucher', '3000'],
      ['voucher', '4000'],
    ])
    expect(signed).toEqual(['sign', 'sign', 'sign', 'sign'])
    // Only the channel opened before the store was lost.
    expect(await channelEvents('ChannelOpened', account.address, from)).toHaveLength(1)
    // Held by this provider at its origin: the store has its mark (written ahead).
    expect(await recordsOf(store)).toEqual([
      expect.objectContaining({
        origin: new URL(proxy.url).origin,
        key: keyOf(rpc.payee),
        entry: expect.objectContaining({ channelId: channel.channelId }),
        ledger: expect.objectContaining({ lease: expect.objectContaining({ live: true }) }),
      }),
    ])
    // The next call is a plain voucher on it.
    expect(await client.getChainId()).toBe(localnet.net.chain.id)
    expect(credentials.at(-1)).toMatchObject({ action: 'voucher', cumulativeAmount: '5000' })
    expect(await provider.close()).toEqual(
      closedAlone(channel.channelId, { settled: 5000n, refunded: 995_000n }),
    )
  })

  test('budget counts the call once: a budget of one price pays it, the next call is refused unsigned', async () => {
    const { proxy, credentials, signed, provider } = await recoveredChannel(8, { snapshots: false })
    const client = paidClient(proxy.url, { provider, budget: 1000n })
    expect(await client.getChainId()).toBe(localnet.net.chain.id)
    // The search (1000, 2000, 3000) is not a payment: the call's 4000 is.
    expect(signed).toHaveLength(4)
    expect(credentials).toHaveLength(4)
    const error = await client.getChainId().catch((error: unknown) => error)
    expect(error).toMatchObject({ reason: 'budget', amount: 1000n })
    expect((error as PaymentRefusedError).metaMessages).toContain('Limit: 0')
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect(signed).toHaveLength(4)
    expect(credentials).toHaveLength(4)
  })
  test('two calls at once on one origin: one catch-up, the other waits and pays the next voucher', async () => {
    const { account, from, credentials, proxy, signed, provider } = await recoveredChannel(4, {
      snapshots: false,
    })
    const client = paidClient(proxy.url, { provider })
    // Two different requests: viem would send two identical ones as one.
    const [chainId, block] = await Promise.all([client.getChainId(), client.getBlockNumber()])
    expect(chainId).toBe(localnet.net.chain.id)
    expect(typeof block).toBe('bigint')
    expect(credentials.map(({ cumulativeAmount }) => cumulativeAmount)).toEqual([
      '1000',
      '2000',
      '3000',
      '4000',
      '5000',
    ])
    expect(signed).toHaveLength(5)
    expect(await channelEvents('ChannelOpened', account.address, from)).toHaveLength(1)
  })
})

describe('a recovered channel the catch-up gives up on', () => {
  test('every catch-up voucher stale: the call fails unpaid, the next one opens a new channel', async () => {
    const { rpc, account, from, store, channel, refusing, vouchers, client } = await refusedCatchUp(
      9,
      staleVoucherAnswer,
    )
    const error = await client.getChainId().catch((error: unknown) => error)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error).toMatchObject({ settled: false })
    const cause = (error as PaymentFailedError).walk()
    expect(cause).toBeInstanceOf(RecoveredChannelError)
    expect(cause).toMatchObject({ reason: 'tooFarBehind', channelId: channel.channelId })
    expect(vouchers).toEqual(Array.from({ length: 100 }, (_, i) => String((i + 1) * 1000)))
    // Not climbed again: the next call opens a channel (its voucher rides in the open).
    expect(await client.getChainId()).toBe(localnet.net.chain.id)
    expect(vouchers).toHaveLength(100)
    const opened = await channelEvents('ChannelOpened', account.address, from)
    expect(opened).toHaveLength(2)
    // The recovered channel belongs to the origin now, free, with the 100 vouchers the search
    // signed recorded (none served): nothing at or below them is signed on it again.
    const records = await recordsOf(store)
    expect(records).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          origin: new URL(refusing.url).origin,
          key: keyOf(rpc.payee),
          entry: expect.objectContaining({ channelId: channel.channelId }),
          ledger: expect.objectContaining({ signed: 100_000n, spent: 0n, lease: undefined }),
        }),
        expect.objectContaining({
          origin: new URL(refusing.url).origin,
          key: keyOf(rpc.payee),
          entry: expect.objectContaining({ channelId: opened[1]?.args.channelId }),
        }),
      ]),
    )
    expect(records).toHaveLength(2)
  })
  test('the server does not know the channel (410): the call fails unpaid, the next one opens', async () => {
    const { rpc, account, from, store, channel, vouchers, client } = await refusedCatchUp(3, () =>
      problemAnswer(410, {
        type: 'https://paymentauth.org/problems/session/channel-not-found',
        detail: 'unknown',
      }),
    )
    const error = await client.getChainId().catch((error: unknown) => error)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error).toMatchObject({ settled: false })
    expect((error as PaymentFailedError).walk()).toMatchObject({ reason: 'channelGone' })
    expect(vouchers).toEqual(['1000'])
    expect(await client.getChainId()).toBe(localnet.net.chain.id)
    expect(vouchers).toEqual(['1000'])
    expect(await channelEvents('ChannelOpened', account.address, from)).toHaveLength(2)
    // Kept (still funded on chain), free, its one signed voucher recorded.
    expect(await recordsOf(store)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          key: keyOf(rpc.payee),
          entry: expect.objectContaining({ channelId: channel.channelId }),
          ledger: expect.objectContaining({ signed: 1000n, spent: 0n, lease: undefined }),
        }),
      ]),
    )
  })
})

describe('take-up of a recovered channel', () => {
  test('two origins of one payee at once: one takes the channel up, the other opens its own', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const account = accountOf(4)
    const { channelId } = await threeCalls(4, rpc.url, memoryChannelStore())
    const from = (await blockNumber()) + 1n
    const store = memoryChannelStore()
    await syncChannels({ store, client: chainClient(), payer: account.address })
    // Two origins in front of the one server (and payee).
    const [a, b] = await Promise.all([
      startProxy(rpc.url, async (_, forward) => forward()),
      startProxy(rpc.url, async (_, forward) => forward()),
    ])
    try {
      const provider = session({ account, client: chainClient(), store })
      const chainIds = await Promise.all([
        paidClient(a.url, { provider }).getChainId(),
        paidClient(b.url, { provider }).getChainId(),
      ])
      expect(chainIds).toEqual([localnet.net.chain.id, localnet.net.chain.id])
      // The recovered channel is in exactly one origin; the other origin opened a channel.
      const records = await recordsOf(store)
      expect(records.filter(({ entry }) => entry.channelId === channelId)).toHaveLength(1)
      expect(records).toHaveLength(2)
      expect(await channelEvents('ChannelOpened', account.address, from)).toHaveLength(1)
      expect(records.map(({ key }) => key)).toEqual([keyOf(rpc.payee), keyOf(rpc.payee)])
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  })
})
