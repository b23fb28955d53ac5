import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createClient, custom, http } from 'viem'
import { describe, expect, test } from 'vitest'
import {
  type ChannelStore,
  ChannelStoreError,
  closeChannel,
  listChannels,
  memoryChannelStore,
  session,
  syncChannels,
  withdrawChannel,
} from '../../src/index.js'
import { channelHelpers, channelRefusal } from '../support/channels.js'
import { useLocalnet } from '../support/localnet.js'
import { type PaidPayload, startProxy } from '../support/proxy.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, paidClient, chainClient, channelEvents, blockNumber, keyOf } =
  sessionHelpers(localnet)
const { threeCalls, stateOf } = channelHelpers(localnet)

/** A loopback server that records the headers of every request it gets and answers 404. */
async function startRecorder() {
  const seen: IncomingHttpHeaders[] = []
  const server = createServer((req, res) => {
    seen.push(req.headers)
    req.resume()
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

describe('closeChannel, hostile', () => {
  test('a url on another origin than the channel was bought from: refused, nothing sent there', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const store = memoryChannelStore()
    const { channelId } = await threeCalls(0, rpc.url, store)
    const before = await listChannels({ store })
    // Another origin, in front of the same server: it would take the close voucher.
    const closes: PaidPayload[] = []
    const other = await startProxy(rpc.url, async (payload, forward) => {
      closes.push(payload)
      return forward()
    })
    try {
      const error = await channelRefusal(
        closeChannel({
          store,
          channelId,
          url: `${other.url}/k3y?token=s3cret`,
          account: accountOf(0),
          client: chainClient(),
        }),
      )
      expect(error.reason).toBe('otherOrigin')
      expect(error.message).not.toMatch(/k3y|s3cret/)
      expect(closes).toEqual([])
      expect(await listChannels({ store })).toEqual(before)
      expect((await stateOf(channelId)).deposit).toBe(1_000_000n)
    } finally {
      await other.stop()
    }
  })

  test('a close voucher in a custom credential header is never redirected to another origin', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const elsewhere = await startRecorder()
    let hostile = false
    // The channel's own origin: a pass-through to the server until it turns hostile, then its
    // challenges name a custom credential header (which fetch keeps across origins) and a request
    // carrying one is redirected (307) to another origin.
    const origin = createServer(async (req, res) => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      if (hostile && req.headers['x-pay']) {
        res.writeHead(307, { location: `${elsewhere.url}/steal` }).end()
        return
      }
      const headers = new Headers()
      for (const [name, value] of Object.entries(req.headers))
        if (typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name))
          headers.set(name, value)
      const body = Buffer.concat(chunks)
      const answer = await fetch(new URL(req.url ?? '/', rpc.url), {
        method: req.method ?? 'POST',
        headers,
        ...(body.length ? { body } : {}),
      })
      const passed: Record<string, string> = {}
      for (const name of ['content-type', 'www-authenticate', 'payment-receipt']) {
        const value = answer.headers.get(name)
        if (value)
          passed[name] = hostile && name === 'www-authenticate' ? `${value}, header="X-Pay"` : value
      }
      res.writeHead(answer.status, passed).end(await answer.text())
    })
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
    try {
      const store = memoryChannelStore()
      const { channelId } = await threeCalls(1, url, store)
      hostile = true
      await channelRefusal(
        closeChannel({ store, channelId, url, account: accountOf(1), client: chainClient() }),
      )
      expect(elsewhere.seen.filter((headers) => headers['x-pay'] !== undefined)).toEqual([])
      expect(await listChannels({ store })).toHaveLength(1)
    } finally {
      await new Promise<void>((resolve) => {
        origin.close(() => resolve())
        origin.closeAllConnections()
      })
      await elsewhere.stop()
    }
  })

  test('a close whose answer is lost after the server closed it: the result read from the chain, the entry removed', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const proxy = await startProxy(rpc.url, async (payload, forward) => {
      if (payload.action !== 'close') return forward()
      const answer = await forward()
      if (!answer.ok) return answer
      // Closed on chain; the answer never arrives.
      await answer.body?.cancel()
      return 'drop'
    })
    try {
      const store = memoryChannelStore()
      const { channelId } = await threeCalls(2, proxy.url, store)
      const closed = await closeChannel({
        store,
        channelId,
        url: proxy.url,
        account: accountOf(2),
        client: chainClient(),
      })
      expect(closed).toEqual({
        channelId,
        settled: 3_000n,
        refunded: 997_000n,
        txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/),
      })
      expect(await stateOf(channelId)).toEqual({ settled: 0n, deposit: 0n, closeRequestedAt: 0 })
      expect(await listChannels({ store })).toEqual([])
    } finally {
      await proxy.stop()
    }
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

describe('syncChannels, a provider writing meanwhile', () => {
  test('a deposit the store missed is written without undoing what was signed since the store was read', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const source = memoryChannelStore()
    await threeCalls(9, rpc.url, source)
    const [stored] = (await source.list?.()) ?? []
    if (!stored) throw new Error('no channel')
    const memory = memoryChannelStore()
    const namespace = memory.forOrigin?.(rpc.url)
    // The store missed a top-up: it says 500 000 when the chain says 1 000 000.
    await namespace?.set({ ...stored.entry, deposit: 500_000n })
    // A provider signs on the channel (and writes it) right after sync has read the store.
    const store: ChannelStore = {
      ...memory,
      async list() {
        const records = (await memory.list?.()) ?? []
        await namespace?.set({ ...stored.entry, deposit: 500_000n, cumulativeAmount: 9_000n })
        return records
      },
    }
    const { updated } = await syncChannels({
      store,
      client: chainClient(),
      payer: accountOf(9).address,
    })
    expect(updated.map(({ channelId }) => channelId)).toEqual([stored.entry.channelId])
    expect(await namespace?.get(stored.key)).toMatchObject({
      deposit: 1_000_000n,
      cumulativeAmount: 9_000n,
    })
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
      const records = (await store.list?.()) ?? []
      expect(records.filter(({ entry }) => entry.channelId === channelId)).toHaveLength(1)
      expect(records).toHaveLength(2)
      expect(await channelEvents('ChannelOpened', account.address, from)).toHaveLength(1)
      expect(records.map(({ key }) => key)).toEqual([keyOf(rpc.payee), keyOf(rpc.payee)])
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  })
})
