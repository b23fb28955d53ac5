import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { type Address, createClient, http, numberToHex } from 'viem'
import { beforeAll, describe, expect, test, vi } from 'vitest'
import { memoryChannelStore, type PaymentQuote, session } from '../../src/index.js'
import { fileChannelStore } from '../../src/node/index.js'
import type { Localnet } from '../../src/testing/index.js'
import { noPayments } from '../support/counters.js'
import { useLocalnet } from '../support/localnet.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

const { accountOf, paidClient, channelEvents, blockNumber, keyOf } = sessionHelpers(localnet)

/** A session provider paying from `accounts[index]`, preparing on a free client of the chain. */
function provider(
  index: number,
  parameters: Omit<Parameters<typeof session>[0], 'account' | 'client'> = {},
) {
  return session({
    account: accountOf(index),
    client: createClient({ chain: net.chain, transport: http(net.rpcUrl) }),
    ...parameters,
  })
}

/** A distinct address per call, so that viem does not deduplicate concurrent calls. */
const addressOf = (n: number) => numberToHex(n, { size: 20 }) as Address

describe('session', () => {
  test('N sequential calls: one ChannelOpened, N + 1 HTTP requests', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const payer = accountOf(0).address
    const client = paidClient(rpc.url, { provider: provider(0) })
    const n = 5
    for (let i = 0; i < n; i++) expect(await client.getChainId()).toBe(net.chain.id)

    const opened = await channelEvents('ChannelOpened', payer, from)
    expect(opened).toHaveLength(1)
    expect(opened[0]!.args.deposit).toBe(1_000_000n)
    expect(rpc.counters.payments).toEqual({
      charge: 0,
      open: 1,
      voucher: n - 1,
      topUp: 0,
      close: 0,
    })
    expect(rpc.counters.forwarded).toBe(n)
    expect(rpc.counters.requests).toBe(n + 1)
  })

  test('50 concurrent first calls: one open, all succeed', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const payer = accountOf(1).address
    const client = paidClient(rpc.url, { provider: provider(1) })
    const addresses = Array.from({ length: 50 }, (_, i) => addressOf(i + 1))
    const balances = await Promise.all(addresses.map((address) => client.getBalance({ address })))

    expect(balances).toHaveLength(50)
    expect(await channelEvents('ChannelOpened', payer, from)).toHaveLength(1)
    expect(rpc.counters.payments.open).toBe(1)
    expect(rpc.counters.payments.voucher).toBe(49)
    expect(rpc.counters.forwarded).toBe(50)
  })

  test('the deposit runs out: one top-up, still one open', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 3_000n })
    const from = await blockNumber()
    const payer = accountOf(2).address
    const quotes: PaymentQuote[] = []
    const client = paidClient(rpc.url, {
      provider: provider(2),
      onPaymentRequired: ({ quote }) => {
        quotes.push(quote)
      },
    })
    for (let i = 0; i < 6; i++) await client.getChainId()

    // What the policy saw before anything was signed: the open and the top-up lock a deposit
    // and cost a fee; every call pays one price.
    const cost = (quote: PaymentQuote) => [quote.amount, quote.deposit, quote.fee > 0n]
    expect(quotes.map(cost)).toEqual([
      [1_000n, 3_000n, true],
      [1_000n, 0n, false],
      [1_000n, 0n, false],
      [1_000n, 3_000n, true],
      [1_000n, 0n, false],
      [1_000n, 0n, false],
    ])
    expect(quotes[0]).toMatchObject({
      method: 'tempo',
      intent: 'session',
      currency: net.currency,
      feeToken: net.currency,
      recipient: rpc.payee,
      transfers: [{ recipient: rpc.payee, amount: 1_000n }],
      chainId: net.chain.id,
    })

    const opened = await channelEvents('ChannelOpened', payer, from)
    expect(opened.map((log) => log.args.deposit)).toEqual([3_000n])
    const topUps = await channelEvents('TopUp', payer, from)
    expect(topUps.map((log) => [log.args.additionalDeposit, log.args.newDeposit])).toEqual([
      [3_000n, 6_000n],
    ])
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 5, topUp: 1 })
    expect(rpc.counters.forwarded).toBe(6)
    // The 402, six calls, one management request for the top-up.
    expect(rpc.counters.requests).toBe(8)
  })

  test('the server forgets the channel: the next call succeeds on a new channel', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const payer = accountOf(3).address
    const store = memoryChannelStore()
    const sessions = provider(3, { store })
    const client = paidClient(rpc.url, { provider: sessions })
    await client.getChainId()
    await client.getChainId()
    const [first] = await channelEvents('ChannelOpened', payer, from)
    await rpc.forgetChannel(first!.args.channelId)

    expect(await client.getChainId()).toBe(net.chain.id)
    const opened = await channelEvents('ChannelOpened', payer, from)
    expect(opened).toHaveLength(2)
    await sessions.release()
    // mppx's own entry of the scope is the usable channel; the forgotten one is kept beside it.
    const key = keyOf(rpc.payee)
    const stored = await store.forOrigin?.(new URL(rpc.url).origin).get(key)
    expect(stored?.channelId).toBe(opened[1]!.args.channelId)
    expect(stored?.cumulativeAmount).toBe(1_000n)
    expect((await rpc.channel(opened[1]!.args.channelId))?.highestVoucher).toBe(1_000n)
    const records = await store.list()
    expect(records.map(({ entry }) => [entry.channelId, entry.opened])).toEqual([
      [opened[1]!.args.channelId, true],
      [first!.args.channelId, false],
    ])
    // The voucher the server answered 410 is not counted: it was not accepted.
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 2, voucher: 1 })
  })

  test('close(): ChannelClosed settles exactly what was spent and refunds the rest', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 100_000n })
    const from = await blockNumber()
    const payer = accountOf(4).address
    const store = memoryChannelStore()
    const sessions = provider(4, { store })
    const client = paidClient(rpc.url, { provider: sessions })
    for (let i = 0; i < 3; i++) await client.getChainId()
    const payerBefore = await localnet.balanceOf(payer)

    const closed = await sessions.close()
    const [opened] = await channelEvents('ChannelOpened', payer, from)
    expect(closed).toEqual([
      {
        channelId: opened!.args.channelId,
        settled: 3_000n,
        refunded: 97_000n,
        txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/),
      },
    ])
    const events = await channelEvents('ChannelClosed', payer, from)
    expect(
      events.map(({ args }) => [args.channelId, args.settledToPayee, args.refundedToPayer]),
    ).toEqual([[opened!.args.channelId, 3_000n, 97_000n]])
    expect(events[0]!.transactionHash).toBe(closed[0]!.txHash)
    // The payee broadcasts the close: the payer gets the rest of its deposit back, fee-free.
    expect(await localnet.balanceOf(payer)).toBe(payerBefore + 97_000n)
    const key = keyOf(rpc.payee)
    expect(await store.forOrigin?.(new URL(rpc.url).origin).get(key)).toBeUndefined()
    expect(rpc.counters.payments.close).toBe(1)
    expect(await sessions.close()).toEqual([])
  })

  test('a greedy suggestedDeposit is capped by maxDeposit; deposit is used when given', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 50_000_000n })
    const from = await blockNumber()
    await paidClient(rpc.url, { provider: provider(5, { maxDeposit: 200_000n }) }).getChainId()
    await paidClient(rpc.url, {
      provider: provider(6, { deposit: 5_000n, maxDeposit: 200_000n }),
    }).getChainId()
    await paidClient(rpc.url, {
      provider: provider(7, { deposit: 900_000n, maxDeposit: 200_000n }),
    }).getChainId()

    const deposits = await Promise.all(
      [5, 6, 7].map(async (index) =>
        (await channelEvents('ChannelOpened', accountOf(index).address, from)).map(
          (log) => log.args.deposit,
        ),
      ),
    )
    expect(deposits).toEqual([[200_000n], [5_000n], [200_000n]])
  })

  test('challengeFor: the accepted challenge of the URL path, while it has more than 5 s left', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const sessions = provider(0)
    const url = `${rpc.url}/v1/secret`
    const request = (url: string) => ({ url, method: 'POST', headers: new Headers(), body: '{}' })
    expect(sessions.challengeFor(request(url))).toBeUndefined()
    await paidClient(url, { provider: sessions }).getChainId()

    const cached = sessions.challengeFor(request(url))
    expect(cached).toMatchObject({ method: 'tempo', intent: 'session' })
    expect(sessions.challengeFor(request(`${url}?page=2`))).toEqual(cached)
    expect(sessions.challengeFor(request(`${rpc.url}/v1/other`))).toBeUndefined()
    const expires = Date.parse(cached!.expires!)
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      vi.setSystemTime(expires - 5_001)
      expect(sessions.challengeFor(request(url))).toEqual(cached)
      vi.setSystemTime(expires - 5_000)
      expect(sessions.challengeFor(request(url))).toBeUndefined()
    } finally {
      vi.useRealTimers()
    }
  })

  test('an entry another tool rewrote (more deposit, a higher amount): taken up from the chain and the server, no gap', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 3_000n })
    const from = await blockNumber()
    const payer = accountOf(1).address
    const store = memoryChannelStore()
    const first = provider(1, { store })
    await paidClient(rpc.url, { provider: first }).getChainId()
    await first.release()
    const entries = store.forOrigin!(new URL(rpc.url).origin)
    const entry = await entries.get(keyOf(rpc.payee))
    await entries.set({ ...entry!, cumulativeAmount: 3_000n, deposit: 10_000n })

    // A new provider (as after a restart) takes the channel up: the deposit from the chain, the
    // position from the server's signed snapshot, so the next voucher is one price above it.
    expect(await paidClient(rpc.url, { provider: provider(1, { store }) }).getChainId()).toBe(
      net.chain.id,
    )
    expect(await channelEvents('ChannelOpened', payer, from)).toHaveLength(1)
    expect(await channelEvents('TopUp', payer, from)).toHaveLength(0)
    expect(await rpc.channel(entry!.channelId)).toMatchObject({
      highestVoucher: 2_000n,
      spent: 2_000n,
    })
  })

  test('a stored entry behind the server: insufficient-balance, then a voucher above it', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const payer = accountOf(2).address
    const store = memoryChannelStore()
    const first = provider(2, { store })
    await paidClient(rpc.url, { provider: first }).getChainId()
    await first.release()
    const entries = store.forOrigin!(new URL(rpc.url).origin)
    const entry = await entries.get(keyOf(rpc.payee))
    await entries.set({ ...entry!, cumulativeAmount: 0n })

    const second = provider(2, { store })
    expect(await paidClient(rpc.url, { provider: second }).getChainId()).toBe(net.chain.id)
    await second.release()
    expect(await channelEvents('ChannelOpened', payer, from)).toHaveLength(1)
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 1 })
    expect((await entries.get(keyOf(rpc.payee)))?.cumulativeAmount).toBe(2_000n)
    expect(await rpc.channel(entry!.channelId)).toMatchObject({
      highestVoucher: 2_000n,
      spent: 2_000n,
    })
  })

  test('10 concurrent calls: one open, the mark written ahead, exact on release; no URL secret stored', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const store = memoryChannelStore()
    const sessions = provider(3, { store, writeAhead: 4 })
    const client = paidClient(`${rpc.url}/v1/secret?apikey=hunter2`, { provider: sessions })
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => client.getBalance({ address: addressOf(i + 1) })),
    )
    expect(rpc.counters.forwarded).toBe(10)
    expect(rpc.counters.payments.open).toBe(1)
    const [record] = await store.list()
    // While held, the store records a mark at most `writeAhead` prices past what was signed.
    expect(record!.ledger!.mark).toBeGreaterThanOrEqual(10_000n)
    expect(record!.ledger!.mark).toBeLessThanOrEqual(14_000n)
    expect(record!.ledger!.lease).toBeDefined()
    await sessions.release()
    const [released] = await store.list()
    expect(released!.ledger).toMatchObject({
      mark: 10_000n,
      signed: 10_000n,
      spent: 10_000n,
      lease: undefined,
    })
    expect(released!.entry.cumulativeAmount).toBe(10_000n)
    expect(released!.origin).toBe(new URL(rpc.url).origin)
    expect(await rpc.channel(released!.entry.channelId)).toMatchObject({
      highestVoucher: 10_000n,
      spent: 10_000n,
    })
  })

  test('two providers (as two processes) on one store: a channel each, each voucher exactly what it served', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const payer = accountOf(4).address
    const store = memoryChannelStore()
    const [one, two] = [provider(4, { store }), provider(4, { store })]
    const clients = [paidClient(rpc.url, { provider: one }), paidClient(rpc.url, { provider: two })]
    for (let i = 0; i < 3; i++)
      for (const client of clients) expect(await client.getChainId()).toBe(net.chain.id)
    const opened = await channelEvents('ChannelOpened', payer, from)
    expect(opened).toHaveLength(2)
    for (const { args } of opened)
      expect(await rpc.channel(args.channelId)).toMatchObject({
        highestVoucher: 3_000n,
        spent: 3_000n,
      })
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 2, voucher: 4 })
    // Released, the next run takes one of them up where it stopped: no third channel.
    await one.release()
    await two.release()
    const next = provider(4, { store })
    await paidClient(rpc.url, { provider: next }).getChainId()
    await next.release()
    expect(await channelEvents('ChannelOpened', payer, from)).toHaveLength(2)
    const held = await Promise.all(opened.map(({ args }) => rpc.channel(args.channelId)))
    expect(held.map((channel) => channel!.highestVoucher).sort()).toEqual([3_000n, 4_000n])
  })

  test("a store shared by two wallets: neither pays on the other's channel", async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const store = memoryChannelStore()
    await paidClient(rpc.url, { provider: provider(5, { store }) }).getChainId()
    expect(await paidClient(rpc.url, { provider: provider(6, { store }) }).getChainId()).toBe(
      net.chain.id,
    )
    for (const index of [5, 6])
      expect(await channelEvents('ChannelOpened', accountOf(index).address, from)).toHaveLength(1)
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 2 })
  })
})

test('a provider dropped without release() gives its channel back to the store once it is garbage-collected', async () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const dir = await mkdtemp(join(tmpdir(), 'viem-mpp-gc-'))
  const store = fileChannelStore(join(dir, 'channels.db'))
  try {
    const from = await blockNumber()
    // Pays twice, then drops the provider, its transport and its client: nothing refers to them.
    const payAndDrop = async () => {
      const client = paidClient(rpc.url, { provider: provider(8, { store }) })
      await client.getChainId()
      await client.getBlockNumber()
    }
    await payAndDrop()
    const lease = async () => (await store.list())[0]?.ledger?.lease
    expect(await lease()).toMatchObject({ pid: process.pid })
    // Collected, its channel is released: the lease ends and the exact ledger is written.
    for (let round = 0; round < 100 && (await lease()) !== undefined; round++) {
      gc()
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    expect(await lease()).toBeUndefined()
    expect((await store.list())[0]?.ledger).toMatchObject({
      signed: 2n * rpc.price,
      spent: 2n * rpc.price,
    })

    // Another provider in this process takes the same channel: no second open, the ledger exact.
    const next = provider(8, { store })
    await paidClient(rpc.url, { provider: next }).getChainId()
    expect(await channelEvents('ChannelOpened', accountOf(8).address, from)).toHaveLength(1)
    const [channel] = await store.list()
    expect((await rpc.channel(channel!.entry.channelId))?.highestVoucher).toBe(3n * rpc.price)
    await next.release()
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
})
