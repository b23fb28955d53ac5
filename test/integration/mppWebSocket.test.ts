/**
 * `mppWebSocket` against `startPaidRpc({ transport: 'ws' })` (mppx's gate, in-band over a real
 * WebSocket) on the localnet: charge and session paid through the same flow as `mppHttp`,
 * asserted on the payee's balance and the server's books; an unpaid socket behaves as
 * `webSocket()`.
 */
import { createPublicClient, numberToHex, webSocket } from 'viem'
import { expect, test } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { mppWebSocket, PaymentRefusedError, session, tempo } from '../../src/index.js'
import { useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, chainClient, channelEvents, blockNumber } = sessionHelpers(localnet)

const clientOf = (url: string, config: Parameters<typeof mppWebSocket>[1]) =>
  createPublicClient({
    chain: localnet.net.chain,
    transport: mppWebSocket(url, config),
    cacheTime: 0,
  })

test('charge over a WebSocket: each call paid once, the payee gets exactly calls × price', async () => {
  const rpc = await localnet.startPaidRpc({ transport: 'ws', price: 2_000n })
  const before = await localnet.balanceOf(rpc.payee)
  const receipts: unknown[] = []
  const client = clientOf(rpc.url, {
    provider: tempo({ account: accountOf(1), client: chainClient() }),
    onReceipt: ({ receipt }) => void receipts.push(receipt),
  })
  for (let i = 0; i < 3; i++) expect(await client.getChainId()).toBe(localnet.net.chain.id)
  expect((await localnet.balanceOf(rpc.payee)) - before).toBe(6_000n)
  expect(rpc.counters).toMatchObject({
    requests: 6,
    challenges: 3,
    forwarded: 3,
    payments: { charge: 3 },
  })
  expect(receipts).toHaveLength(3)
})

test('session over a WebSocket: one channel, then one message per paid call; the server holds exactly what it served', async () => {
  const rpc = await localnet.startPaidRpc({ transport: 'ws', intent: 'session' })
  const from = await blockNumber()
  const provider = session({ account: accountOf(2), client: chainClient() })
  const client = clientOf(rpc.url, { provider })
  await client.getChainId()
  rpc.resetCounters()
  for (let i = 0; i < 10; i++) await client.getBlockNumber()
  expect(rpc.counters).toMatchObject({ requests: 10, challenges: 0, forwarded: 10 })
  // 50 different calls at once on the one socket (identical ones viem would send once).
  await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      client.getBalance({ address: numberToHex(i + 1, { size: 20 }) }),
    ),
  )
  expect(rpc.counters).toMatchObject({ requests: 60, challenges: 0, forwarded: 60 })
  const opened = await channelEvents('ChannelOpened', accountOf(2).address, from)
  expect(opened).toHaveLength(1)
  const { channelId } = opened[0]!.args as { channelId: `0x${string}` }
  expect(await rpc.channel(channelId)).toMatchObject({
    highestVoucher: 61n * rpc.price,
    spent: 61n * rpc.price,
  })
  await provider.release()
})

test('the limits of mppHttp: above maxAmount, refused before anything is signed', async () => {
  const rpc = await localnet.startPaidRpc({ transport: 'ws', price: 9_000n })
  const before = await localnet.balanceOf(rpc.payee)
  const client = clientOf(rpc.url, {
    provider: tempo({ account: accountOf(3), client: chainClient() }),
    maxAmount: 1_000n,
  })
  const error = await rejectionOf(client.getChainId())
  expect(
    (error as PaymentRefusedError).walk((cause) => cause instanceof PaymentRefusedError),
  ).toMatchObject({ reason: 'maxAmount' })
  expect(await localnet.balanceOf(rpc.payee)).toBe(before)
})

test("webSocket() shows a paid server's challenge as the JSON-RPC error -32042; mppWebSocket pays it, and an error answer after payment comes back as viem's own", async () => {
  const rpc = await localnet.startPaidRpc({ transport: 'ws' })
  const plain = createPublicClient({ chain: localnet.net.chain, transport: webSocket(rpc.url) })
  expect(await rejectionOf(plain.getChainId())).toMatchObject({ code: -32042 })
  const client = clientOf(rpc.url, {
    provider: tempo({ account: accountOf(4), client: chainClient() }),
  })
  const error = await rejectionOf(client.request({ method: 'eth_noSuchMethod' as never }))
  expect(error).toMatchObject({ code: -32601 })
  expect(rpc.counters.payments.charge).toBe(1)
})

test('the socket dropped after a voucher reached the server: that call fails typed, the next ones go on over a new socket, and the server ends holding exactly what it served', async () => {
  const rpc = await localnet.startPaidRpc({ transport: 'ws', intent: 'session' })
  // A proxy in front of the server that cuts the client's socket once, right after forwarding
  // the fourth paid message (its voucher reaches the server; its answer never comes back).
  const proxy = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => proxy.once('listening', resolve))
  let paidMessages = 0
  proxy.on('connection', (client) => {
    const upstream = new WebSocket(rpc.url)
    const queue: string[] = []
    upstream.on('open', () => {
      for (const message of queue.splice(0)) upstream.send(message)
    })
    upstream.on('message', (data) => client.readyState === client.OPEN && client.send(String(data)))
    client.on('message', (data) => {
      const text = String(data)
      if (upstream.readyState === upstream.OPEN) upstream.send(text)
      else queue.push(text)
      if (text.includes('org.paymentauth/credential') && ++paidMessages === 4) client.terminate()
    })
    client.on('close', () => upstream.close())
    client.on('error', () => {})
  })
  const url = `ws://127.0.0.1:${(proxy.address() as { port: number }).port}`
  const from = await blockNumber()
  const provider = session({ account: accountOf(5), client: chainClient() })
  const client = clientOf(url, { provider })
  try {
    const outcomes: string[] = []
    for (let i = 0; i < 8; i++)
      outcomes.push(
        await client.getBalance({ address: numberToHex(i + 1, { size: 20 }) }).then(
          () => 'ok',
          (error: Error) => {
            const chain: string[] = []
            for (let cause: unknown = error; cause instanceof Error; cause = cause.cause)
              chain.push(
                `${cause.name}: ${(cause as { shortMessage?: string }).shortMessage ?? cause.message.split('\n')[0]}`,
              )
            return chain.join(' <- ')
          },
        ),
      )
    console.log(`[ws drop] outcomes ${outcomes.join(', ')}`)
    // Every failure is the typed one, and once viem has reconnected the calls go on.
    for (const outcome of outcomes.filter((each) => each !== 'ok')) {
      expect(outcome).toContain(
        'PaymentFailedError: The paid request failed after the payment was sent.',
      )
      // The socket's failure as a typed error, not a stringified event.
      expect(outcome).not.toContain('[object')
    }
    const end = Date.now() + 15_000
    let after = 0
    for (let i = 100; after < 20 && Date.now() < end; i++)
      await client.getBalance({ address: numberToHex(i, { size: 20 }) }).then(
        () => after++,
        () => {},
      )
    expect(after).toBe(20)
    await provider.release()
    const opened = await channelEvents('ChannelOpened', accountOf(5).address, from)
    expect(opened).toHaveLength(1)
    const { channelId } = opened[0]!.args as { channelId: `0x${string}` }
    const held = await rpc.channel(channelId)
    console.log(
      `[ws drop] server: ${JSON.stringify(held, (_, value) => (typeof value === 'bigint' ? String(value) : value))}`,
    )
    expect(held?.highestVoucher).toBe(held?.spent)
    expect(held?.spent).toBe(BigInt(held?.units ?? 0) * rpc.price)
  } finally {
    for (const socket of proxy.clients) socket.terminate()
    await new Promise((resolve) => proxy.close(resolve))
  }
})
