import { createClient, createPublicClient, http } from 'viem'
import { expect, test } from 'vitest'
import { charge, mppHttp, session } from '../../src/index.js'
import { fundedRoot, provisionedKey } from '../support/accessKeys.js'
import { useLocalnet } from '../support/localnet.js'

/**
 * viem users attach their account to their clients. With a `viem/tempo` access-key account on the
 * provider's `client`, viem sends the payment's reads as a Tempo node takes them (`calls: [...]`
 * instead of `to`/`data`); the localnet answers them as a Tempo node does, and the payment goes
 * through as with a client without an account.
 */
const localnet = useLocalnet()

/** A provisioned access key, and a chain client that carries it as its account. */
async function keyOnClient() {
  const { net } = localnet
  const root = await fundedRoot(net, 10_000_000n)
  const { account } = await provisionedKey(net, root, { limit: 5_000_000n })
  const client = createClient({ account, chain: net.chain, transport: http(net.rpcUrl) })
  return { root, account, client }
}

test('charge: an access-key account on the client pays, exactly the price', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ intent: 'charge' })
  const { account, client } = await keyOnClient()
  const before = await localnet.balanceOf(rpc.payee)
  const paid = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: mppHttp(rpc.url, { provider: charge({ account, client }) }),
  })
  expect(await paid.getChainId()).toBe(net.chain.id)
  expect(await paid.getChainId()).toBe(net.chain.id)
  expect(rpc.counters.payments.charge).toBe(2)
  expect((await localnet.balanceOf(rpc.payee)) - before).toBe(2n * rpc.price)
})

test('session: an access-key account on the client opens one channel and pays vouchers', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const { account, client } = await keyOnClient()
  const provider = session({ account, client })
  const paid = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: mppHttp(rpc.url, { provider }),
  })
  for (let i = 0; i < 3; i++) expect(await paid.getChainId()).toBe(net.chain.id)
  expect(rpc.counters.payments).toMatchObject({ open: 1, voucher: 2 })
  const [closed] = await provider.close()
  expect(closed).toMatchObject({ settled: 3n * rpc.price })
  expect(await rpc.channel(closed!.channelId)).toMatchObject({
    highestVoucher: 3n * rpc.price,
    spent: 3n * rpc.price,
  })
})
