/**
 * A session's management requests in-band (viem-mpp's `org.paymentauth/manage`: a top-up, a
 * close), over a WebSocket and over HTTP with in-band signalling, against mppx's gate on the
 * localnet: the channel is topped up and closed cooperatively with no HTTP status to lean on,
 * and the chain shows exactly what the server served.
 */
import { createPublicClient } from 'viem'
import { expect, test } from 'vitest'
import { mppHttp, mppWebSocket, session } from '../../src/index.js'
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
