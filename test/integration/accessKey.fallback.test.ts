import { type Address, getAddress } from 'viem'
import { beforeAll, expect, test } from 'vitest'
import { charge, PaymentFailedError, session } from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import {
  authorizedKey,
  chainReader,
  fillLoggingChainClient,
  fundedRoot,
  keyDoesNotExist,
  keyMetadata,
  minedTransactionsOf,
  recordingPaidClient,
  sameKeyAnew,
  startKeyRejectingProxy,
} from '../support/accessKeys.js'
import { noPayments } from '../support/counters.js'
import { useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'

// The provisioning order: the keychain is read before a payment while the key's registration is
// unknown; the authorization rides along only while the chain lacks the key, and once after a
// server says the key is not provisioned when the chain agrees. (A key whose spending limit is
// below the price is refused before signing: test/integration/accessKey.limits.test.ts.)

const localnet = useLocalnet()
const { balanceOf } = localnet
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

const funding = 2_000_000n
const zeroAddress = '0x0000000000000000000000000000000000000000'
const keyNotProvisioned = {
  type: 'https://paymentauth.org/problems/tempo/key-not-provisioned',
  title: 'Key Not Provisioned',
  detail: 'The key is not provisioned on chain.',
}

const keyOnChain = async (root: Address, accessKey: Address) =>
  (await keyMetadata(net, root, accessKey)).address

/** Every mined transaction of `root` from block `from` on: whether it carried a key authorization. */
const rootTransactions = async (root: Address, from: bigint) =>
  (await minedTransactionsOf(net, root, from)).map(
    (transaction) => !!(transaction as { keyAuthorization?: unknown }).keyAuthorization,
  )

/**
 * A fresh root wallet's key, authorized but not on chain, paying `url` through the provider
 * `intent` makes with a fill-logging chain client; `from` is the latest block before it paid.
 */
async function unprovisionedKeyPaying(url: string, intent: typeof charge | typeof session) {
  const root = await fundedRoot(net, funding)
  const key = await authorizedKey(net, root, { limit: 1_500_000n })
  const from = await chainReader(net).getBlockNumber()
  const chain = fillLoggingChainClient(net)
  const paid = recordingPaidClient(net, url, intent({ account: key.account, client: chain.client }))
  return { root, key, from, chain, ...paid }
}

test('an unprovisioned key pays its first charge with its authorization; later charges, an open and a top-up omit it', async () => {
  const price = 1_000n
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const { root, key, from, chain, client, sent, receipts } = await unprovisionedKeyPaying(
    rpc.url,
    charge,
  )

  expect(await client.getChainId()).toBe(net.chain.id)
  expect(await client.getBlockNumber()).toBeGreaterThan(0n)
  expect(sent).toHaveLength(2)
  expect(receipts).toHaveLength(2)
  expect(getAddress(await keyOnChain(root.address, key.address))).toBe(key.address)
  // The first carried the authorization (the chain lacked the key); the second did not.
  expect(chain.fills).toEqual([
    { keyAuthorization: true, refused: false },
    { keyAuthorization: false, refused: false },
  ])
  expect(await rootTransactions(root.address, from)).toEqual([true, false])

  // A session with the same account: the key is known provisioned, the open and its top-up
  // carry nothing, and the keychain is not authorized again.
  await rpc.stop()
  const sessionRpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const sessions = recordingPaidClient(
    net,
    sessionRpc.url,
    session({ account: key.account, client: chain.client }),
  )
  for (let i = 0; i < 3; i++) await sessions.client.getChainId()
  expect(sessionRpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 2, topUp: 1 })
  expect(chain.fills.slice(2)).toEqual([
    { keyAuthorization: false, refused: false },
    { keyAuthorization: false, refused: false },
  ])
  expect(await rootTransactions(root.address, from)).toEqual([true, false, false, false])
})

test('an unprovisioned key opens a session with its authorization; its top-up omits it', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const { root, key, from, chain, client, sent } = await unprovisionedKeyPaying(rpc.url, session)

  for (let i = 0; i < 3; i++) await client.getChainId()
  expect(sent).toHaveLength(3)
  expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 2, topUp: 1 })
  expect(getAddress(await keyOnChain(root.address, key.address))).toBe(key.address)
  // The open provisioned the key; the top-up (signed by the key too) carried nothing.
  expect(chain.fills).toEqual([
    { keyAuthorization: true, refused: false },
    { keyAuthorization: false, refused: false },
  ])
  expect(await rootTransactions(root.address, from)).toEqual([true, false])
})

test('a server that says "access key does not exist" once, while the chain lacks the key: one extra round, then paid once', async () => {
  const price = 1_000n
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const proxy = await startKeyRejectingProxy(rpc.url, {
    rejects: (index) => index === 0,
    problem: keyDoesNotExist,
  })
  try {
    const { root, key, chain, client, sent, rejected, receipts } = await unprovisionedKeyPaying(
      proxy.url,
      charge,
    )
    const payeeBefore = await balanceOf(rpc.payee)

    expect(await client.getChainId()).toBe(net.chain.id)
    // Two credentials, one rejected (it never reached the server), one paid.
    expect(sent).toHaveLength(2)
    expect(sent[0]!.challenge.id).not.toBe(sent[1]!.challenge.id)
    expect(rejected).toEqual([{ status: 402, problem: { status: 402, ...keyDoesNotExist } }])
    expect(proxy.counts).toEqual({ paid: 2, rejected: 1 })
    expect(receipts).toHaveLength(1)
    // Unpaid probe, the rejected round's fresh challenge, the paid round.
    expect(rpc.counters).toEqual({
      requests: 3,
      challenges: 2,
      forwarded: 1,
      notifications: 0,
      payments: { ...noPayments, charge: 1 },
    })
    expect((await balanceOf(rpc.payee)) - payeeBefore).toBe(price)
    expect(getAddress(await keyOnChain(root.address, key.address))).toBe(key.address)
    expect(chain.fills.map(({ refused }) => refused)).toEqual([false, false])
  } finally {
    await proxy.stop()
  }
})

test('a session open answered "key is not provisioned" once, while the chain lacks the key: one extra round, one channel', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const proxy = await startKeyRejectingProxy(rpc.url, {
    rejects: (index, payload) => index === 0 && payload.action === 'open',
    problem: keyNotProvisioned,
  })
  try {
    const { root, key, from, chain, client, sent, rejected } = await unprovisionedKeyPaying(
      proxy.url,
      session,
    )

    expect(await client.getChainId()).toBe(net.chain.id)
    expect(sent).toHaveLength(2)
    expect(rejected).toEqual([{ status: 402, problem: { status: 402, ...keyNotProvisioned } }])
    expect(proxy.counts).toEqual({ paid: 2, rejected: 1 })
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1 })
    // Both opens carried the authorization; only the second reached the chain.
    expect(chain.fills).toEqual([
      { keyAuthorization: true, refused: false },
      { keyAuthorization: true, refused: false },
    ])
    expect(await rootTransactions(root.address, from)).toEqual([true])
    expect(getAddress(await keyOnChain(root.address, key.address))).toBe(key.address)
  } finally {
    await proxy.stop()
  }
})

test('a server that keeps saying "access key does not exist" while the chain has the key: PaymentFailedError, no authorization sent again', async () => {
  const price = 1_000n
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  let lying = false
  const proxy = await startKeyRejectingProxy(rpc.url, {
    rejects: () => lying,
    problem: keyDoesNotExist,
  })
  try {
    // The first payment provisions the key.
    const { root, key, from, chain, ...first } = await unprovisionedKeyPaying(proxy.url, charge)
    const payeeBefore = await balanceOf(rpc.payee)
    expect(await first.client.getChainId()).toBe(net.chain.id)
    expect(getAddress(await keyOnChain(root.address, key.address))).toBe(key.address)
    lying = true

    // The same provider (the key known provisioned), then a fresh one for the same key, as a new
    // process would have (its registration unknown): each reads the chain once and stops.
    const again = fillLoggingChainClient(net)
    const second = recordingPaidClient(
      net,
      proxy.url,
      charge({ account: sameKeyAnew(root, key), client: again.client }),
    )
    for (const paid of [first, second]) {
      const sentBefore = paid.sent.length
      const error = await rejectionOf(paid.client.getBlockNumber())
      expect(error).toBeInstanceOf(PaymentFailedError)
      const failed = error as PaymentFailedError
      expect(failed.shortMessage).toBe('The server rejected the payment.')
      expect(failed.status).toBe(402)
      expect(failed.problem).toEqual({ status: 402, ...keyDoesNotExist })
      // One credential, without the authorization; never a second round.
      expect(paid.sent.length - sentBefore).toBe(1)
    }
    expect(chain.fills).toEqual([
      { keyAuthorization: true, refused: false },
      { keyAuthorization: false, refused: false },
    ])
    expect(again.fills).toEqual([{ keyAuthorization: false, refused: false }])
    expect(proxy.counts).toEqual({ paid: 3, rejected: 2 })
    // Only the first payment reached the server; one authorization on chain, no KeyAlreadyExists.
    expect(rpc.counters.payments).toEqual({ ...noPayments, charge: 1 })
    expect((await balanceOf(rpc.payee)) - payeeBefore).toBe(price)
    expect(await rootTransactions(root.address, from)).toEqual([true])
  } finally {
    await proxy.stop()
  }
})

test('a server that keeps saying "access key does not exist" while the chain lacks the key: the authorization is attached once more, then PaymentFailedError', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price: 1_000n })
  const proxy = await startKeyRejectingProxy(rpc.url, {
    rejects: () => true,
    problem: keyDoesNotExist,
  })
  try {
    const { root, key, chain, client, sent, rejected } = await unprovisionedKeyPaying(
      proxy.url,
      charge,
    )

    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).shortMessage).toBe(
      'The server said twice that the access key is not provisioned.',
    )
    expect(sent).toHaveLength(2)
    expect(rejected).toHaveLength(2)
    expect(chain.fills).toEqual([
      { keyAuthorization: true, refused: false },
      { keyAuthorization: true, refused: false },
    ])
    expect(rpc.counters.payments).toEqual(noPayments)
    expect(await keyOnChain(root.address, key.address)).toBe(zeroAddress)
    expect(await balanceOf(root.address)).toBe(funding)
  } finally {
    await proxy.stop()
  }
})

test('a top-up answered "access key does not exist" while the chain has the key: PaymentFailedError, never re-authorized', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const proxy = await startKeyRejectingProxy(rpc.url, {
    rejects: (_, payload) => payload.action === 'topUp',
    problem: keyDoesNotExist,
  })
  try {
    const { root, from, chain, client, sent } = await unprovisionedKeyPaying(proxy.url, session)
    for (let i = 0; i < 2; i++) await client.getChainId()

    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).shortMessage).toBe('The payment could not be made.')
    expect((error as PaymentFailedError).settled).toBe(false)
    expect(sent).toHaveLength(2)
    expect(proxy.counts.rejected).toBe(1)
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 1 })
    // The open provisioned the key; the top-up carried nothing, and nothing was refused.
    expect(chain.fills).toEqual([
      { keyAuthorization: true, refused: false },
      { keyAuthorization: false, refused: false },
    ])
    expect(await rootTransactions(root.address, from)).toEqual([true])
  } finally {
    await proxy.stop()
  }
})

test('a keychain read that missed the key: the node refuses the authorization when filling (KeyAlreadyExists), the charge is prepared again without it and paid once', async () => {
  const price = 1_000n
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  // Provisions the key.
  const { root, key, from, ...first } = await unprovisionedKeyPaying(rpc.url, charge)
  expect(await first.client.getChainId()).toBe(net.chain.id)

  // A second process of the same key, whose first keychain read is stale (no key yet).
  const chain = fillLoggingChainClient(net, { staleKeyReads: 1 })
  const payeeBefore = await balanceOf(rpc.payee)
  const { client, sent } = recordingPaidClient(
    net,
    rpc.url,
    charge({ account: sameKeyAnew(root, key), client: chain.client }),
  )
  expect(await client.getBlockNumber()).toBeGreaterThan(0n)
  expect(sent).toHaveLength(1)
  expect(chain.fills).toEqual([
    { keyAuthorization: true, refused: true },
    { keyAuthorization: false, refused: false },
  ])
  expect((await balanceOf(rpc.payee)) - payeeBefore).toBe(price)
  expect(await rootTransactions(root.address, from)).toEqual([true, false])
})
