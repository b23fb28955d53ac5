import { createClient, http } from 'viem'
import { Actions } from 'viem/tempo'
import { beforeAll, expect, test } from 'vitest'
import { charge, session } from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import {
  authorizedKey,
  chainReader,
  expectRefused,
  fundedRoot,
  keyMetadata,
  minedTransactionsOf,
  recordingPaidClient,
  remainingLimit,
  rootWallet,
} from '../support/accessKeys.js'
import { challengedOnce } from '../support/counters.js'
import { useLocalnet } from '../support/localnet.js'

const localnet = useLocalnet()
const { balanceOf } = localnet
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

/** What every root wallet here starts with, in pathUSD base units. */
const funding = 1_000_000n

const now = () => Math.floor(Date.now() / 1000)

/** The chain client the providers prepare payments on. */
const chainClient = () => createClient({ chain: net.chain, transport: http(net.rpcUrl) })

/**
 * A charge server at `price`, and a client paying it with the key of a fresh root wallet,
 * authorized up to `limit` and until `expiry` (an hour from now if not given).
 */
async function keyPayingCharges({
  price,
  limit,
  expiry,
}: {
  price: bigint
  limit: bigint
  expiry?: number
}) {
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot(net, funding)
  const key = await authorizedKey(net, root, { expiry, limit })
  const { client, sent } = recordingPaidClient(
    net,
    rpc.url,
    charge({ account: key.account, client: chainClient() }),
  )
  return { rpc, root, key, client, sent }
}

test('a key authorization whose limit is below the price and the fee is refused before signing, naming the limit', async () => {
  const price = 1_000n
  const limit = 500n
  const { rpc, root, key, client, sent } = await keyPayingCharges({ price, limit })
  const payeeBefore = await balanceOf(rpc.payee)

  const refused = await expectRefused(client.getChainId(), 'accessKeyLimit')
  expect(refused.amount).toBe(price)
  expect(refused.fee).toBeGreaterThan(0n)
  expect(refused.shortMessage).toBe(
    'The access key cannot make the payment (revoked, expired, over its spending limit, or not allowed the call); nothing was signed or paid.',
  )
  expect(refused.message).toContain(
    `Access key: remaining limit ${limit} of token ${net.currency} is below the ${price + refused.fee} the payment spends of it (amount + fee).`,
  )
  expect(refused.accessKey).toEqual({
    token: net.currency,
    remaining: limit,
    needed: price + refused.fee,
  })
  // Only the unpaid probe reached the server; nothing moved, and the key is still not on chain.
  expect(sent).toEqual([])
  expect(rpc.counters).toEqual(challengedOnce)
  expect(await balanceOf(root.address)).toBe(funding)
  expect(await balanceOf(rpc.payee)).toBe(payeeBefore)
  const metadata = await keyMetadata(net, root.address, key.address)
  expect(metadata.address).toBe('0x0000000000000000000000000000000000000000')
})

test('an expired key authorization is refused before signing, naming its expiry', async () => {
  const expiry = now() - 60
  const { rpc, root, client, sent } = await keyPayingCharges({
    price: 1_000n,
    limit: 500_000n,
    expiry,
  })

  const refused = await expectRefused(client.getChainId(), 'accessKeyLimit')
  expect(refused.message).toContain(
    `Access key: expired at ${new Date(expiry * 1000).toISOString()} (unix ${expiry}).`,
  )
  expect(sent).toEqual([])
  expect(rpc.counters).toEqual(challengedOnce)
  expect(await balanceOf(root.address)).toBe(funding)
})

test('a key with enough limit pays; once the chain shows its remaining limit below the price and the fee, it is refused before signing', async () => {
  const price = 200_000n
  const limit = 300_000n
  const { rpc, root, key, client, sent } = await keyPayingCharges({ price, limit })
  const payeeBefore = await balanceOf(rpc.payee)

  // The first payment provisions the key and spends the price and its fee of the limit.
  expect(await client.getChainId()).toBe(net.chain.id)
  expect(sent).toHaveLength(1)
  expect(await balanceOf(rpc.payee)).toBe(payeeBefore + price)
  const spent = funding - (await balanceOf(root.address))
  const firstFee = spent - price
  expect(firstFee).toBeGreaterThan(0n)
  const remaining = await remainingLimit(net, root.address, key.address)
  expect(remaining).toBe(limit - spent)
  const counted = { ...rpc.counters }

  // The second is judged by the keychain's remaining limit.
  const refused = await expectRefused(client.getBlockNumber(), 'accessKeyLimit')
  expect(refused.message).toContain(
    `Access key: remaining limit ${remaining} of token ${net.currency} is below the ${price + refused.fee} the payment spends of it (amount + fee).`,
  )
  expect(sent).toHaveLength(1)
  // One more unpaid probe, and no credential.
  expect(rpc.counters).toEqual({
    ...counted,
    requests: counted.requests + 1,
    challenges: counted.challenges + 1,
  })
  expect(await balanceOf(root.address)).toBe(funding - spent)
  expect(await balanceOf(rpc.payee)).toBe(payeeBefore + price)
})

test('a key authorization whose limit covers the fee but not the price is refused before signing: no reverted transaction spends a fee', async () => {
  const price = 200_000n
  const limit = 100_000n
  const { rpc, root, client, sent } = await keyPayingCharges({ price, limit })
  const firstBlock = await chainReader(net).getBlockNumber()

  const refused = await expectRefused(client.getChainId(), 'accessKeyLimit')
  expect(refused.message).toContain(
    `Access key: remaining limit ${limit} of token ${net.currency} is below the ${price + refused.fee} the payment spends of it (amount + fee).`,
  )
  expect(sent).toEqual([])
  expect(rpc.counters).toEqual(challengedOnce)
  expect(await balanceOf(root.address)).toBe(funding)
  // No transaction of the root wallet was mined (one reverting would have spent its fee).
  const mined = (await minedTransactionsOf(net, root.address, firstBlock)).map(({ hash }) => hash)
  expect(mined).toEqual([])
})

test("a session open whose deposit is above the key authorization's limit is refused before signing", async () => {
  const limit = 500_000n
  // The server suggests 1000 × its price: a deposit of 1_000_000.
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const root = await fundedRoot(net, funding)
  const key = await authorizedKey(net, root, { limit })
  const { client } = recordingPaidClient(
    net,
    rpc.url,
    session({ account: key.account, client: chainClient() }),
  )

  const refused = await expectRefused(client.getChainId(), 'accessKeyLimit')
  // The open's deposit is the payment's amount here; its fee counts too.
  expect(refused.amount).toBe(1_000_000n)
  expect(refused.fee).toBeGreaterThan(0n)
  expect(refused.message).toContain(
    `Access key: remaining limit ${limit} of token ${net.currency} is below the ${1_000_000n + refused.fee} the payment spends of it (amount + fee).`,
  )
  expect(rpc.counters).toEqual(challengedOnce)
  expect(await balanceOf(root.address)).toBe(funding)
})

test('a key revoked after it paid is refused before signing', async () => {
  const price = 1_000n
  const { rpc, root, key, client, sent } = await keyPayingCharges({ price, limit: 500_000n })
  expect(await client.getChainId()).toBe(net.chain.id)
  expect(sent).toHaveLength(1)

  // The root wallet revokes the key on chain.
  const { receipt } = await Actions.accessKey.revokeSync(rootWallet(net, root), {
    accessKey: key.address,
  })
  expect(receipt.status).toBe('success')
  const metadata = await keyMetadata(net, root.address, key.address)
  expect(metadata.isRevoked).toBe(true)
  const balance = await balanceOf(root.address)
  const counted = { ...rpc.counters }

  const refused = await expectRefused(client.getBlockNumber(), 'accessKeyLimit')
  expect(refused.message).toContain('Access key: revoked.')
  expect(sent).toHaveLength(1)
  expect(rpc.counters).toEqual({
    ...counted,
    requests: counted.requests + 1,
    challenges: counted.challenges + 1,
  })
  expect(await balanceOf(root.address)).toBe(balance)
})
