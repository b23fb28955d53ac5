/**
 * A session's management requests in-band (viem-mpp's `org.paymentauth/manage`: a top-up, a
 * close), over a WebSocket and over HTTP with in-band signalling, against mppx's gate on the
 * localnet: the channel is topped up and closed cooperatively with no HTTP status to lean on —
 * by the provider, or later by `closeChannel` with the ws:// URL — and the chain shows exactly
 * what the server served.
 */
import { createPublicClient } from 'viem'
import { expect, test } from 'vitest'
import {
  closeChannel,
  listChannels,
  memoryChannelStore,
  mppHttp,
  mppWebSocket,
  session,
} from '../../src/index.js'
import type { StartPaidRpcOptions } from '../../src/testing/index.js'
import { useLocalnet } from '../support/localnet.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, chainClient, channelEvents, blockNumber } = sessionHelpers(localnet)

const servers: [string, Partial<StartPaidRpcOptions>, typeof mppHttp | typeof mppWebSocket][] = [
  ['over a WebSocket', { transport: 'ws' }, mppWebSocket],
  ['over HTTP in-band', { signalling: 'jsonrpc' }, mppHttp],
]

test.each(servers.map(([name, options, transport], index) => [name, options, transport, index]))(
  '%s: the channel is topped up and closed in-band; the payee gets exactly what was served, the payer the rest',
  async (_, options, transport, index) => {
    const rpc = await localnet.startPaidRpc({
      ...(options as Partial<StartPaidRpcOptions>),
      intent: 'session',
      suggestedDeposit: 2_000n,
    })
    const account = accountOf(1 + (index as number))
    const from = await blockNumber()
    const provider = session({ account, client: chainClient() })
    const client = createPublicClient({
      chain: localnet.net.chain,
      transport: (transport as typeof mppHttp)(rpc.url, { provider }),
      cacheTime: 0,
    })
    for (let call = 0; call < 5; call++) await client.getChainId()
    // A deposit of two prices: topped up on the way, with no HTTP status to signal it.
    expect(rpc.counters.payments.open).toBe(1)
    expect(rpc.counters.payments.topUp).toBeGreaterThanOrEqual(1)
    expect(rpc.counters.forwarded).toBe(5)
    const [opened] = await channelEvents('ChannelOpened', account.address, from)
    const { channelId } = opened!.args as { channelId: `0x${string}` }
    const held = await rpc.channel(channelId)
    expect(held).toMatchObject({ highestVoucher: 5n * rpc.price, spent: 5n * rpc.price })
    expect(held!.deposit).toBeGreaterThan(2_000n)

    const [closed, ...more] = await provider.close()
    expect(more).toEqual([])
    expect(closed).toMatchObject({
      settled: 5n * rpc.price,
      refunded: held!.deposit - 5n * rpc.price,
    })
    expect(rpc.counters.payments.close).toBe(1)
    const onChain = await channelEvents('ChannelClosed', account.address, from)
    expect(onChain.map(({ args }) => args)).toMatchObject([
      { settledToPayee: 5n * rpc.price, refundedToPayer: held!.deposit - 5n * rpc.price },
    ])
  },
)

test('a channel bought over a WebSocket, closed later by closeChannel with the ws:// URL: in-band on a socket of its own, exact on chain, the store emptied', async () => {
  const rpc = await localnet.startPaidRpc({ transport: 'ws', intent: 'session' })
  const account = accountOf(3)
  const from = await blockNumber()
  const store = memoryChannelStore()
  const provider = session({ account, client: chainClient(), store })
  const client = createPublicClient({
    chain: localnet.net.chain,
    transport: mppWebSocket(rpc.url, { provider }),
    cacheTime: 0,
  })
  for (let call = 0; call < 3; call++) await client.getChainId()
  await provider.release()
  const [opened] = await channelEvents('ChannelOpened', account.address, from)
  const { channelId, deposit } = opened!.args as { channelId: `0x${string}`; deposit: bigint }

  const closed = await closeChannel({
    store,
    channelId,
    url: rpc.url,
    account,
    client: chainClient(),
  })
  expect(closed).toMatchObject({
    channelId,
    settled: 3n * rpc.price,
    refunded: deposit - 3n * rpc.price,
  })
  expect(rpc.counters.payments.close).toBe(1)
  const onChain = await channelEvents('ChannelClosed', account.address, from)
  expect(onChain.map(({ args }) => args)).toMatchObject([
    { settledToPayee: 3n * rpc.price, refundedToPayer: deposit - 3n * rpc.price },
  ])
  expect(await listChannels({ store })).toEqual([])
})
