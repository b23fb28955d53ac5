import { createClient, createPublicClient, createWalletClient, http } from 'viem'
import { type Account, Actions } from 'viem/tempo'
import { beforeAll, expect, test } from 'vitest'
import {
  charge,
  mppHttp,
  type PaymentEvent,
  PaymentRefusedError,
  session,
} from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import {
  authorizedKey as authorizedKeyOf,
  fundedRoot as fundedRootOf,
} from '../support/accessKeys.js'
import { challengedOnce } from '../support/counters.js'
import { useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'

const localnet = useLocalnet()
const { balanceOf } = localnet
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

/** What every root wallet here starts with, in pathUSD base units. */
const funding = 1_000_000n

const plain = () =>
  createPublicClient({ chain: net.chain, transport: http(net.rpcUrl), cacheTime: 0 })

const now = () => Math.floor(Date.now() / 1000)

const fundedRoot = () => fundedRootOf(net, funding)
const authorizedKey = (root: Account.RootAccount, limits: { expiry: number; limit: bigint }) =>
  authorizedKeyOf(net, root, limits)

/** A public client on the paid RPC through mppHttp, paying charges with `account`. */
function paidClient(url: string, account: Parameters<typeof charge>[0]['account']) {
  const sent: PaymentEvent[] = []
  const client = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: mppHttp(url, {
      provider: charge({
        account,
        client: createClient({ chain: net.chain, transport: http(net.rpcUrl) }),
      }),
      onPaymentSent: (event) => sent.push(event),
    }),
  })
  return { client, sent }
}

test('a key authorization whose limit is below the price and the fee is refused before signing, naming the limit', async () => {
  const price = 1_000n
  const limit = 500n
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot()
  const key = await authorizedKey(root, { expiry: now() + 3600, limit })
  const payeeBefore = await balanceOf(rpc.payee)
  const { client, sent } = paidClient(rpc.url, key.account)

  const error = await rejectionOf(client.getChainId())
  expect(error).toBeInstanceOf(PaymentRefusedError)
  const refused = error as PaymentRefusedError
  expect(refused.reason).toBe('accessKeyLimit')
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
  const metadata = await Actions.accessKey.getMetadata(plain(), {
    account: root.address,
    accessKey: key.address,
  })
  expect(metadata.address).toBe('0x0000000000000000000000000000000000000000')
})

test('an expired key authorization is refused before signing, naming its expiry', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price: 1_000n })
  const root = await fundedRoot()
  const expiry = now() - 60
  const key = await authorizedKey(root, { expiry, limit: 500_000n })
  const { client, sent } = paidClient(rpc.url, key.account)

  const error = await rejectionOf(client.getChainId())
  expect(error).toBeInstanceOf(PaymentRefusedError)
  const refused = error as PaymentRefusedError
  expect(refused.reason).toBe('accessKeyLimit')
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
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot()
  const key = await authorizedKey(root, { expiry: now() + 3600, limit })
  const payeeBefore = await balanceOf(rpc.payee)
  const { client, sent } = paidClient(rpc.url, key.account)

  // The first payment provisions the key and spends the price and its fee of the limit.
  expect(await client.getChainId()).toBe(net.chain.id)
  expect(sent).toHaveLength(1)
  expect(await balanceOf(rpc.payee)).toBe(payeeBefore + price)
  const spent = funding - (await balanceOf(root.address))
  const firstFee = spent - price
  expect(firstFee).toBeGreaterThan(0n)
  const { remaining } = await Actions.accessKey.getRemainingLimit(plain(), {
    account: root.address,
    accessKey: key.address,
    token: net.currency,
  })
  expect(remaining).toBe(limit - spent)
  const counted = { ...rpc.counters }

  // The second is judged by the keychain's remaining limit.
  const error = await rejectionOf(client.getBlockNumber())
  expect(error).toBeInstanceOf(PaymentRefusedError)
  const refused = error as PaymentRefusedError
  expect(refused.reason).toBe('accessKeyLimit')
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
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot()
  const key = await authorizedKey(root, { expiry: now() + 3600, limit })
  const firstBlock = await plain().getBlockNumber()
  const { client, sent } = paidClient(rpc.url, key.account)

  const error = await rejectionOf(client.getChainId())
  expect(error).toBeInstanceOf(PaymentRefusedError)
  const refused = error as PaymentRefusedError
  expect(refused.reason).toBe('accessKeyLimit')
  expect(refused.message).toContain(
    `Access key: remaining limit ${limit} of token ${net.currency} is below the ${price + refused.fee} the payment spends of it (amount + fee).`,
  )
  expect(sent).toEqual([])
  expect(rpc.counters).toEqual(challengedOnce)
  expect(await balanceOf(root.address)).toBe(funding)
  // No transaction of the root wallet was mined (one reverting would have spent its fee).
  const mined: string[] = []
  for (let n = firstBlock; n <= (await plain().getBlockNumber()); n++) {
    const block = await plain().getBlock({ blockNumber: n, includeTransactions: true })
    for (const transaction of block.transactions)
      if (transaction.from === root.address.toLowerCase()) mined.push(transaction.hash)
  }
  expect(mined).toEqual([])
})

test("a session open whose deposit is above the key authorization's limit is refused before signing", async () => {
  const limit = 500_000n
  // The server suggests 1000 × its price: a deposit of 1_000_000.
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const root = await fundedRoot()
  const key = await authorizedKey(root, { expiry: now() + 3600, limit })
  const client = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: mppHttp(rpc.url, {
      provider: session({
        account: key.account,
        client: createClient({ chain: net.chain, transport: http(net.rpcUrl) }),
      }),
    }),
  })

  const error = await rejectionOf(client.getChainId())
  expect(error).toBeInstanceOf(PaymentRefusedError)
  const refused = error as PaymentRefusedError
  expect(refused.reason).toBe('accessKeyLimit')
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
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot()
  const key = await authorizedKey(root, { expiry: now() + 3600, limit: 500_000n })
  const { client, sent } = paidClient(rpc.url, key.account)
  expect(await client.getChainId()).toBe(net.chain.id)
  expect(sent).toHaveLength(1)

  // The root wallet revokes the key on chain.
  const wallet = createWalletClient({
    account: root,
    chain: net.chain,
    transport: http(net.rpcUrl),
  })
  const { receipt } = await Actions.accessKey.revokeSync(wallet, { accessKey: key.address })
  expect(receipt.status).toBe('success')
  const metadata = await Actions.accessKey.getMetadata(plain(), {
    account: root.address,
    accessKey: key.address,
  })
  expect(metadata.isRevoked).toBe(true)
  const balance = await balanceOf(root.address)
  const counted = { ...rpc.counters }

  const error = await rejectionOf(client.getBlockNumber())
  expect(error).toBeInstanceOf(PaymentRefusedError)
  const refused = error as PaymentRefusedError
  expect(refused.reason).toBe('accessKeyLimit')
  expect(refused.message).toContain('Access key: revoked.')
  expect(sent).toHaveLength(1)
  expect(rpc.counters).toEqual({
    ...counted,
    requests: counted.requests + 1,
    challenges: counted.challenges + 1,
  })
  expect(await balanceOf(root.address)).toBe(balance)
})
