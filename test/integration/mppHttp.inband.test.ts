/**
 * `mppHttp` paying in-band JSON-RPC signalling (a `200` holding a `-32042` error) over HTTP, as a
 * JSON-RPC-first server sends it (`startPaidRpc({ signalling: 'jsonrpc' })`, mppx's gate): the
 * same flow, rules and limits as a 402. Asserted on the payee's balance and the server's books.
 */
import { createPublicClient, http } from 'viem'
import { expect, test } from 'vitest'
import { mppHttp, PaymentRefusedError, session, tempo } from '../../src/index.js'
import { useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, chainClient, channelEvents, blockNumber } = sessionHelpers(localnet)

const paidClient = (url: string, config: Parameters<typeof mppHttp>[1]) =>
  createPublicClient({ chain: localnet.net.chain, transport: mppHttp(url, config), cacheTime: 0 })

test('charge: each call paid once in-band, the payee gets exactly calls × price, receipts read from _meta', async () => {
  const rpc = await localnet.startPaidRpc({ signalling: 'jsonrpc', price: 3_000n })
  const before = await localnet.balanceOf(rpc.payee)
  const receipts: string[] = []
  const client = paidClient(rpc.url, {
    provider: tempo({ account: accountOf(1), client: chainClient() }),
    onReceipt: ({ receipt }) => void receipts.push(receipt?.reference ?? ''),
  })
  for (let i = 0; i < 3; i++) expect(await client.getChainId()).toBe(localnet.net.chain.id)
  expect((await localnet.balanceOf(rpc.payee)) - before).toBe(9_000n)
  expect(rpc.counters).toMatchObject({ challenges: 3, forwarded: 3, payments: { charge: 3 } })
  expect(new Set(receipts).size).toBe(3)
})

test('session: one channel opened in-band, then one request per call with the voucher in _meta; exact on the server', async () => {
  const rpc = await localnet.startPaidRpc({ signalling: 'jsonrpc', intent: 'session' })
  const from = await blockNumber()
  const provider = session({ account: accountOf(2), client: chainClient() })
  const client = paidClient(rpc.url, { provider })
  await client.getChainId()
  rpc.resetCounters()
  for (let i = 0; i < 5; i++) await client.getBlockNumber()
  expect(rpc.counters).toMatchObject({ requests: 5, challenges: 0, forwarded: 5 })
  const [opened, ...others] = await channelEvents('ChannelOpened', accountOf(2).address, from)
  expect(others).toEqual([])
  if (!opened) throw new Error('no channel opened')
  const { channelId } = opened.args as { channelId: `0x${string}` }
  expect(await rpc.channel(channelId)).toMatchObject({
    highestVoucher: 6n * rpc.price,
    spent: 6n * rpc.price,
  })
  await provider.release()
})

test('the same limits: above maxAmount, an in-band challenge is refused with nothing paid', async () => {
  const rpc = await localnet.startPaidRpc({ signalling: 'jsonrpc', price: 5_000n })
  const before = await localnet.balanceOf(rpc.payee)
  const client = paidClient(rpc.url, {
    provider: tempo({ account: accountOf(3), client: chainClient() }),
    maxAmount: 4_000n,
  })
  const error = await rejectionOf(client.getChainId())
  expect(
    (error as PaymentRefusedError).walk((cause) => cause instanceof PaymentRefusedError),
  ).toMatchObject({
    reason: 'maxAmount',
  })
  expect(await localnet.balanceOf(rpc.payee)).toBe(before)
  expect(rpc.counters.payments.charge).toBe(0)
})

test('an unpaid endpoint answering ordinary JSON-RPC errors is untouched: the error reaches the caller as http() gives it', async () => {
  const client = paidClient(localnet.net.rpcUrl, {
    provider: tempo({ account: accountOf(4), client: chainClient() }),
  })
  const plain = createPublicClient({
    chain: localnet.net.chain,
    transport: http(localnet.net.rpcUrl),
  })
  const call = { method: 'eth_noSuchMethod' as never, params: [] as never }
  const [ours, theirs] = await Promise.all([
    rejectionOf(client.request(call)),
    rejectionOf(plain.request(call)),
  ])
  expect(ours.name).toBe(theirs.name)
  expect((ours as { code?: number }).code).toBe((theirs as { code?: number }).code)
})
