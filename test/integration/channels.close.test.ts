import { createServer, type IncomingHttpHeaders } from 'node:http'
import { Session } from 'mppx/tempo'
import { type Hex, parseEventLogs } from 'viem'
import { Addresses } from 'viem/tempo'
import { describe, expect, test } from 'vitest'
import { formatError } from '../../src/cli/errors.js'
import {
  type ChannelStore,
  type ChannelSummary,
  closeChannel,
  listChannels,
  memoryChannelStore,
} from '../../src/index.js'
import { channelHelpers, channelRefusal } from '../support/channels.js'
import { listening } from '../support/fakeServer.js'
import { tip20, useLocalnet } from '../support/localnet.js'
import {
  bodyOf,
  forwardTo,
  type PaidPayload,
  passedBack,
  problemAnswer,
  recordingProxy,
  refusingProxy,
  startProxy,
} from '../support/proxy.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, chainClient, plain, keyOf, channelEvents, blockNumber } =
  sessionHelpers(localnet)
const { threeCalls, stateOf } = channelHelpers(localnet)

/** `closeChannel` of `channelId` at `url`, by dev account `index`, on the localnet. */
const closeAs = (
  index: number,
  { store, channelId, url }: { store: ChannelStore; channelId: Hex; url: string },
) => closeChannel({ store, channelId, url, account: accountOf(index), client: chainClient() })

/** What closing a channel of `threeCalls` gives: 3000 to the payee, the rest back, in a transaction. */
const closedAfterThreeCalls = (channelId: Hex) => ({
  channelId,
  settled: 3_000n,
  refunded: 997_000n,
  txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/),
})

/** The store lists what it did `before` the refused close, and the channel keeps its deposit. */
async function expectChannelKept(store: ChannelStore, before: ChannelSummary[], channelId: Hex) {
  expect(await listChannels({ store })).toEqual(before)
  expect((await stateOf(channelId)).deposit).toBe(1_000_000n)
}

describe('closeChannel', () => {
  test('settles exactly what the server accepted; the payer gets the rest', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const store = memoryChannelStore()
    const { channelId } = await threeCalls(0, rpc.url, store)
    const payer = accountOf(0).address
    const from = await blockNumber()

    const closed = await closeAs(0, { store, channelId, url: rpc.url })
    expect(closed).toEqual(closedAfterThreeCalls(channelId))
    // The token moved out of the reserve exactly so, in the close transaction.
    const receipt = await plain().getTransactionReceipt({ hash: closed.txHash as Hex })
    const transfers = parseEventLogs({ abi: tip20, logs: receipt.logs, eventName: 'Transfer' })
      .filter(({ args }) => args.from.toLowerCase() === Addresses.tip20ChannelReserve)
      .map(({ args }) => [args.to, args.amount])
    expect(transfers).toEqual([
      [rpc.payee, 3_000n],
      [payer, 997_000n],
    ])
    expect(await channelEvents('ChannelClosed', payer, from)).toHaveLength(1)
    expect(await stateOf(channelId)).toEqual({ settled: 0n, deposit: 0n, closeRequestedAt: 0 })
    expect(rpc.counters.payments.close).toBe(1)
    // The entry is gone; closing again is refused (`unknownChannel`), nothing sent.
    expect(await listChannels({ store })).toEqual([])
    const again = await channelRefusal(closeAs(0, { store, channelId, url: rpc.url }))
    expect(again.reason).toBe('unknownChannel')
  })

  test('the server is gone: unreachable, the channel stays in the store and on chain', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const store = memoryChannelStore()
    const { channelId } = await threeCalls(1, rpc.url, store)
    const before = await listChannels({ store })
    await rpc.stop()

    const url = `${rpc.url}/k3y?token=s3cret`
    const error = await channelRefusal(closeAs(1, { store, channelId, url }))
    expect(error.reason).toBe('unreachable')
    expect(error.message).not.toMatch(/k3y|s3cret/)
    await expectChannelKept(store, before, channelId)
  })

  test('a server that claims a close the chain does not show: serverLied, nothing lost', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const fakeReceipt = Session.Precompile.Protocol.serializeSessionReceipt({
      method: 'tempo',
      intent: 'session',
      status: 'success',
      timestamp: new Date().toISOString(),
      reference: `0x${'ab'.repeat(32)}`,
      challengeId: 'x',
      channelId: `0x${'cd'.repeat(32)}`,
      acceptedCumulative: '3000',
      spent: '3000',
      txHash: `0x${'ef'.repeat(32)}`,
    } as never)
    const proxy = await startProxy(rpc.url, async (payload: PaidPayload, forward) =>
      payload.action === 'close'
        ? new Response(null, { status: 200, headers: { 'payment-receipt': fakeReceipt } })
        : forward(),
    )
    try {
      const store = memoryChannelStore()
      const { channelId } = await threeCalls(2, proxy.url, store)
      const before = await listChannels({ store })
      const error = await channelRefusal(closeAs(2, { store, channelId, url: proxy.url }))
      expect(error.reason).toBe('serverLied')
      await expectChannelKept(store, before, channelId)
    } finally {
      await proxy.stop()
    }
  })

  test('a server asking for more than was signed: refused, no voucher above it signed', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const proxy = await refusingProxy(rpc.url, 'close', () =>
      problemAnswer(402, {
        type: 'https://paymentauth.org/problems/verification-failed',
        detail: 'close voucher amount must be >= 50000 (spent)',
      }),
    )
    const closes = proxy.refused
    try {
      const store = memoryChannelStore()
      const { channelId } = await threeCalls(3, proxy.url, store)
      const error = await channelRefusal(closeAs(3, { store, channelId, url: proxy.url }))
      expect(error.reason).toBe('serverRefused')
      expect(error.shortMessage).toBe(
        `The server at ${new URL(proxy.url).origin} asks for a close voucher of 0.05 pathUSD (50000 base units), above the 0.003 pathUSD (3000) signed on the channel: it does not close it.`,
      )
      // The next step: withdrawing without the server.
      expect(error.metaMessages).toEqual([
        'The channel stays open; withdrawChannel() gets the deposit back without the server.',
      ])
      expect(formatError(error, { verbose: false })).toContain(
        `\n  The channel stays open; \`viem-mpp channels withdraw ${channelId}\` gets the deposit back without the server.\n`,
      )
      // One close voucher, at what is settled on chain (nothing): never the 50 000 asked.
      expect(closes).toEqual(['0'])
      expect(await listChannels({ store })).toHaveLength(1)
    } finally {
      await proxy.stop()
    }
  })

  test('bad input: unknown id, another payer, a closed channel — typed, nothing changed', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const store = memoryChannelStore()
    const { channelId } = await threeCalls(4, rpc.url, store)
    const params = { store, url: rpc.url, client: chainClient() }

    const unknown = await channelRefusal(
      closeChannel({ ...params, channelId: `0x${'11'.repeat(32)}`, account: accountOf(4) }),
    )
    expect(unknown.reason).toBe('unknownChannel')
    const other = await channelRefusal(
      closeChannel({ ...params, channelId, account: accountOf(5) }),
    )
    expect(other.reason).toBe('notPayer')
    expect(rpc.counters.payments.close).toBe(0)
    expect((await stateOf(channelId)).deposit).toBe(1_000_000n)

    // Closed on chain behind the store's back (the provider closed it; the entry is re-added).
    const [entry] = (await store.list?.()) ?? []
    await closeChannel({ ...params, channelId, account: accountOf(4) })
    if (entry) await store.forOrigin?.(rpc.url).set(entry.entry)
    const closed = await channelRefusal(
      closeChannel({ ...params, channelId, account: accountOf(4) }),
    )
    expect(closed.reason).toBe('closed')
    expect(rpc.counters.payments.close).toBe(1)
    expect(await store.forOrigin?.(rpc.url).get(keyOf(rpc.payee))).toEqual(entry?.entry)
  })
})

/** A loopback server that records the headers of every request it gets and answers 404. */
async function startRecorder() {
  const seen: IncomingHttpHeaders[] = []
  const server = createServer((req, res) => {
    seen.push(req.headers)
    req.resume()
    res.writeHead(404).end()
  })
  return { ...(await listening(server)), seen }
}

describe('closeChannel, hostile', () => {
  test('a url on another origin than the channel was bought from: refused, nothing sent there', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const store = memoryChannelStore()
    const { channelId } = await threeCalls(0, rpc.url, store)
    const before = await listChannels({ store })
    // Another origin, in front of the same server: it would take the close voucher.
    const other = await recordingProxy(rpc.url)
    const closes = other.paid
    try {
      const url = `${other.url}/k3y?token=s3cret`
      const error = await channelRefusal(closeAs(0, { store, channelId, url }))
      expect(error.reason).toBe('otherOrigin')
      expect(error.message).not.toMatch(/k3y|s3cret/)
      expect(closes).toEqual([])
      await expectChannelKept(store, before, channelId)
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
    const origin = await listening(
      createServer(async (req, res) => {
        const body = await bodyOf(req)
        if (hostile && req.headers['x-pay']) {
          res.writeHead(307, { location: `${elsewhere.url}/steal` }).end()
          return
        }
        const answer = await forwardTo(rpc.url, req, body)
        const passed = passedBack(answer)
        const challenges = passed['www-authenticate']
        if (hostile && challenges) passed['www-authenticate'] = `${challenges}, header="X-Pay"`
        res.writeHead(answer.status, passed).end(await answer.text())
      }),
    )
    const { url } = origin
    try {
      const store = memoryChannelStore()
      const { channelId } = await threeCalls(1, url, store)
      hostile = true
      await channelRefusal(closeAs(1, { store, channelId, url }))
      expect(elsewhere.seen.filter((headers) => headers['x-pay'] !== undefined)).toEqual([])
      expect(await listChannels({ store })).toHaveLength(1)
    } finally {
      await origin.stop()
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
      const closed = await closeAs(2, { store, channelId, url: proxy.url })
      expect(closed).toEqual(closedAfterThreeCalls(channelId))
      expect(await stateOf(channelId)).toEqual({ settled: 0n, deposit: 0n, closeRequestedAt: 0 })
      expect(await listChannels({ store })).toEqual([])
    } finally {
      await proxy.stop()
    }
  })
})
