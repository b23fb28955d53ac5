/**
 * Paid subscriptions over `mppWebSocket` against `startPaidRpc({ transport: 'ws' })` (mppx's gate,
 * its subscriptions relayed from anvil's own WebSocket) on the localnet: `eth_subscribe` is paid
 * once when the server asks, its notifications never; a reconnect subscribes again and pays
 * again only because the server asks again, never replaying a credential. Asserted on the
 * payee's balance, the server's books and the chain's blocks.
 */
import { createPublicClient, type WatchBlockNumberParameters } from 'viem'
import { afterEach, expect, test } from 'vitest'
import { mppWebSocket, session, tempo } from '../../src/index.js'
import { useLocalnet } from '../support/localnet.js'
import { sessionHelpers } from '../support/sessions.js'
import { until } from '../support/until.js'

const localnet = useLocalnet()
const { accountOf, chainClient, channelEvents, blockNumber } = sessionHelpers(localnet)

const clients: { transport: { getRpcClient(): Promise<{ close(): void }> } }[] = []
// Closed on purpose, so that viem does not try to reconnect once the server has stopped.
afterEach(async () => {
  for (const client of clients.splice(0)) (await client.transport.getRpcClient()).close()
})

const clientOf = (url: string, config: Parameters<typeof mppWebSocket>[1]) => {
  const client = createPublicClient({
    chain: localnet.net.chain,
    transport: mppWebSocket(url, { reconnect: { delay: 50 }, ...config }),
    cacheTime: 0,
  })
  clients.push(client)
  return client
}

type Client = ReturnType<typeof clientOf>

/** Block numbers from a `watchBlockNumber` subscription, and errors it reported. */
function watch(client: Client, options: Partial<WatchBlockNumberParameters> = {}) {
  const numbers: bigint[] = []
  const errors: Error[] = []
  const unwatch = client.watchBlockNumber({
    onBlockNumber: (number) => void numbers.push(number),
    onError: (error) => void errors.push(error),
    ...options,
  })
  const count = (length: number) =>
    until(async () => numbers.length >= length, {
      message: `${numbers.length} of ${length} blocks`,
    })
  return { numbers, errors, unwatch, count }
}

/** Resolves once the chain has mined `blocks` more blocks (anvil mines one a second). */
async function blocksPass(blocks: bigint) {
  const from = await blockNumber()
  await until(async () => (await blockNumber()) >= from + blocks)
}

test('watchBlockNumber over a paid subscription: subscribed and paid once, every notification unpaid; unsubscribing is free and ends them', async () => {
  const rpc = await localnet.startPaidRpc({ transport: 'ws', price: 3_000n })
  const before = await localnet.balanceOf(rpc.payee)
  const client = clientOf(rpc.url, {
    provider: tempo({ account: accountOf(6), client: chainClient() }),
  })
  const watching = watch(client)
  await watching.count(4)
  // One block after another, each from a notification.
  for (const [index, number] of watching.numbers.entries())
    if (index > 0) expect(number).toBe(watching.numbers[index - 1]! + 1n)
  watching.unwatch()
  await until(async () => rpc.counters.requests === 3)
  const notifications = rpc.counters.notifications
  expect(notifications).toBeGreaterThanOrEqual(4)
  expect(rpc.counters).toMatchObject({
    requests: 3, // eth_subscribe unpaid (-32042), paid, then eth_unsubscribe
    challenges: 1,
    forwarded: 1,
    payments: { charge: 1 },
  })
  expect((await localnet.balanceOf(rpc.payee)) - before).toBe(3_000n)
  await blocksPass(2n)
  expect(rpc.counters.notifications).toBe(notifications)
  expect(watching.errors).toEqual([])
})

test('watchBlocks over a session: one channel, the subscription and each block read paid by voucher; the server holds exactly what it served', async () => {
  const rpc = await localnet.startPaidRpc({ transport: 'ws', intent: 'session' })
  const from = await blockNumber()
  const receipts: unknown[] = []
  const provider = session({ account: accountOf(7), client: chainClient() })
  const client = clientOf(rpc.url, {
    provider,
    onReceipt: ({ receipt }) => void receipts.push(receipt),
  })
  const blocks: bigint[] = []
  const errors: Error[] = []
  const unwatch = client.watchBlocks({
    onBlock: (block) => void blocks.push(block.number),
    onError: (error) => void errors.push(error),
  })
  await until(async () => blocks.length >= 3)
  unwatch()
  // Every paid request answered (block reads started before the unwatch included).
  await until(async () => receipts.length === rpc.counters.forwarded)
  const opened = await channelEvents('ChannelOpened', accountOf(7).address, from)
  expect(opened).toHaveLength(1)
  const { channelId } = opened[0]!.args as { channelId: `0x${string}` }
  const paid = BigInt(rpc.counters.forwarded)
  expect(paid).toBeGreaterThanOrEqual(4n) // the subscription and a read per block
  expect(await rpc.channel(channelId)).toMatchObject({
    highestVoucher: paid * rpc.price,
    spent: paid * rpc.price,
  })
  expect(rpc.counters.challenges).toBe(1)
  expect(errors).toEqual([])
  await provider.release()
})

test.each([
  ['charge', 'charge' as const],
  ['session', 'session' as const],
])(
  '%s: the socket dropped under a subscription: viem reconnects, the server asks again and is paid again, no credential replayed',
  async (_, intent) => {
    const rpc = await localnet.startPaidRpc({ transport: 'ws', intent, price: 2_000n })
    const account = accountOf(intent === 'charge' ? 8 : 9)
    const before = await localnet.balanceOf(rpc.payee)
    const from = await blockNumber()
    const provider =
      intent === 'charge'
        ? tempo({ account, client: chainClient() })
        : session({ account, client: chainClient() })
    const client = clientOf(rpc.url, { provider })
    const watching = watch(client)
    await watching.count(2)
    ;(await client.transport.getRpcClient()).socket.close()
    await watching.count(watching.numbers.length + 3)
    watching.unwatch()
    await until(async () => rpc.counters.requests === 5)
    // Subscribed twice, each asked (-32042) and paid once; a replayed credential would have been
    // refused with a -32043, counted as a third challenge.
    expect(rpc.counters).toMatchObject({ requests: 5, challenges: 2, forwarded: 2 })
    // viem tells the subscriber the socket closed, as webSocket() does (twice, here as there);
    // nothing else went wrong.
    expect(watching.errors.length).toBeGreaterThan(0)
    for (const error of watching.errors) expect(error.name).toBe('SocketClosedError')
    if (intent === 'charge') {
      expect(rpc.counters.payments.charge).toBe(2)
      expect((await localnet.balanceOf(rpc.payee)) - before).toBe(4_000n)
    } else {
      const opened = await channelEvents('ChannelOpened', account.address, from)
      expect(opened).toHaveLength(1)
      const { channelId } = opened[0]!.args as { channelId: `0x${string}` }
      expect(await rpc.channel(channelId)).toMatchObject({ highestVoucher: 4_000n, spent: 4_000n })
      await (provider as ReturnType<typeof session>).release()
    }
  },
)
