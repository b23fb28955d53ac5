import type { KeyAuthorization } from 'ox/tempo'
import { createClient, getAddress, http } from 'viem'
import { Abis, type Account, Addresses, Selectors } from 'viem/tempo'
import { beforeAll, expect, test } from 'vitest'
import { charge, session } from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import {
  authorizedKey,
  chainReader,
  expectRefused,
  fundedRoot as fundedRootOf,
  keyMetadata,
  provisionedKey,
  recordingPaidClient,
  remainingLimit,
  setRemainingLimit,
} from '../support/accessKeys.js'
import { challengedOnce, noPayments } from '../support/counters.js'
import { useLocalnet } from '../support/localnet.js'

// Call scopes and limits are checked before signing: a forbidden call on chain reverts and still
// spends its fee (anvil enforces scopes as Tempo does).

const localnet = useLocalnet()
const { balanceOf } = localnet
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

const funding = 2_000_000n
const reserve = Addresses.tip20ChannelReserve
const { transferWithMemo, transfer } = Selectors.tip20
const { open, topUp } = Selectors.tip20ChannelReserve

const currency = () => getAddress(net.currency)
const chainClient = () => createClient({ chain: net.chain, transport: http(net.rpcUrl) })
const fundedRoot = () => fundedRootOf(net, funding)
const paidClient = (url: string, provider: ReturnType<typeof charge>) =>
  recordingPaidClient(net, url, provider)

/** A key of `root`, provisioned on chain with `scopes`, paying `url` with `intent`'s provider. */
async function provisionedKeyPaying(
  root: Account.RootAccount,
  url: string,
  intent: typeof charge | typeof session,
  scopes?: KeyAuthorization.Scope[],
) {
  const key = await provisionedKey(net, root, { limit: 500_000n, scopes })
  return { key, ...paidClient(url, intent({ account: key.account, client: chainClient() })) }
}

/** Expects `promise` refused, nothing signed, because the access key cannot make the payment. */
async function expectAccessKeyRefused(promise: Promise<unknown>) {
  const refused = await expectRefused(promise, 'accessKeyLimit')
  expect(refused.shortMessage).toBe(
    'The access key cannot make the payment (revoked, expired, over its spending limit, or not allowed the call); nothing was signed or paid.',
  )
  return refused
}

test("a key on chain whose scopes allow only another function of the token: the charge's transferWithMemo is refused before signing", async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price: 1_000n })
  const root = await fundedRoot()
  const { client, sent } = await provisionedKeyPaying(root, rpc.url, charge, [
    { address: net.currency, selector: transfer },
  ])
  const balance = await balanceOf(root.address)

  const refused = await expectAccessKeyRefused(client.getChainId())
  expect(refused.message).toContain(
    `Access key: its call scopes do not allow transferWithMemo (${transferWithMemo}) on ${currency()} to ${rpc.payee}; they allow ${transfer} on ${currency()}.`,
  )
  expect(sent).toEqual([])
  expect(rpc.counters).toEqual(challengedOnce)
  expect(await balanceOf(root.address)).toBe(balance)
})

test('a key on chain whose scopes allow transferWithMemo to another recipient only: refused, naming the recipient; to the payee: paid', async () => {
  const price = 1_000n
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot()
  const other = net.accounts[7]!.address
  const refusedClient = await provisionedKeyPaying(root, rpc.url, charge, [
    { address: net.currency, selector: transferWithMemo, recipients: [other] },
  ])
  const balance = await balanceOf(root.address)
  const refused = await expectAccessKeyRefused(refusedClient.client.getChainId())
  expect(refused.message).toContain(
    `Access key: its call scopes do not allow transferWithMemo (${transferWithMemo}) on ${currency()} to ${rpc.payee}; they allow ${transferWithMemo} on ${currency()} to ${other}.`,
  )
  expect(refusedClient.sent).toEqual([])
  expect(await balanceOf(root.address)).toBe(balance)

  // The same scope naming the payee allows the charge.
  const paid = await provisionedKeyPaying(root, rpc.url, charge, [
    { address: net.currency, selector: transferWithMemo, recipients: [rpc.payee] },
  ])
  const payeeBefore = await balanceOf(rpc.payee)
  expect(await paid.client.getChainId()).toBe(net.chain.id)
  expect(paid.sent).toHaveLength(1)
  expect(rpc.counters.payments).toEqual({ ...noPayments, charge: 1 })
  expect((await balanceOf(rpc.payee)) - payeeBefore).toBe(price)
})

test("a key whose scopes allow only the token: the session open is refused before signing, naming the reserve's open", async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const root = await fundedRoot()
  const { client, sent } = await provisionedKeyPaying(root, rpc.url, session, [
    { address: net.currency },
  ])
  const balance = await balanceOf(root.address)

  const refused = await expectAccessKeyRefused(client.getChainId())
  expect(refused.message).toContain(
    `Access key: its call scopes do not allow open (${open}) on ${reserve}; they allow any function on ${currency()}.`,
  )
  expect(sent).toEqual([])
  expect(rpc.counters).toEqual(challengedOnce)
  expect(await balanceOf(root.address)).toBe(balance)
})

test("a key whose scopes allow the reserve's open but not topUp: the channel opens and pays, the top-up is refused before signing", async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const root = await fundedRoot()
  const { client, sent } = await provisionedKeyPaying(root, rpc.url, session, [
    { address: reserve, selector: open },
  ])
  // The deposit covers two calls: an open and a voucher.
  for (let i = 0; i < 2; i++) await client.getChainId()
  const balance = await balanceOf(root.address)

  const refused = await expectAccessKeyRefused(client.getChainId())
  expect(refused.message).toContain(
    `Access key: its call scopes do not allow topUp (${topUp}) on ${reserve}; they allow ${open} on ${reserve}.`,
  )
  expect(sent).toHaveLength(2)
  expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 1 })
  expect(await balanceOf(root.address)).toBe(balance)
})

test("a key not on chain is judged by its authorization's scopes: forbidden, refused before signing and still not on chain", async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price: 1_000n })
  const root = await fundedRoot()
  // The root wallet's authorization, scoped to the reserve: no token transfers.
  const { address, account } = await authorizedKey(net, root, {
    limit: 500_000n,
    scopes: [
      { address: reserve, selector: 'open(address,address,address,uint96,bytes32,address)' },
    ],
  })
  const { client, sent } = paidClient(rpc.url, charge({ account, client: chainClient() }))

  const refused = await expectAccessKeyRefused(client.getChainId())
  expect(refused.message).toContain(
    `Access key: its call scopes do not allow transferWithMemo (${transferWithMemo}) on ${currency()} to ${rpc.payee}; they allow ${open} on ${reserve}.`,
  )
  expect(sent).toEqual([])
  expect(rpc.counters).toEqual(challengedOnce)
  expect(await balanceOf(root.address)).toBe(funding)
  const metadata = await keyMetadata(net, root.address, address)
  expect(metadata.address).toBe('0x0000000000000000000000000000000000000000')
})

test("a key not on chain whose authorization's scopes allow the charge: its first charge provisions it, scopes included; the next one pays too", async () => {
  const price = 1_000n
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot()
  const { address, account } = await authorizedKey(net, root, {
    limit: 500_000n,
    scopes: [{ address: net.currency, selector: transferWithMemo, recipients: [rpc.payee] }],
  })
  const payeeBefore = await balanceOf(rpc.payee)
  const { client, sent } = paidClient(rpc.url, charge({ account, client: chainClient() }))

  expect(await client.getChainId()).toBe(net.chain.id)
  expect(await client.getBlockNumber()).toBeTypeOf('bigint')
  expect(sent).toHaveLength(2)
  expect(rpc.counters.payments).toEqual({ ...noPayments, charge: 2 })
  expect((await balanceOf(rpc.payee)) - payeeBefore).toBe(2n * price)
  const metadata = await keyMetadata(net, root.address, address)
  expect(metadata.address).toBe(address)
  const [isScoped, scopes] = await chainReader(net).readContract({
    address: Addresses.accountKeychain,
    abi: Abis.accountKeychain,
    functionName: 'getAllowedCalls',
    args: [root.address, address],
  })
  expect(isScoped).toBe(true)
  expect(scopes).toEqual([
    {
      target: currency(),
      selectorRules: [{ selector: transferWithMemo, recipients: [rpc.payee] }],
    },
  ])
})

test("a session top-up that the key's remaining limit cannot cover is refused before signing; nothing is sent", async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const root = await fundedRoot()
  const { key, client, sent } = await provisionedKeyPaying(root, rpc.url, session)
  for (let i = 0; i < 2; i++) await client.getChainId()
  // What is left of the key's limit is below the next top-up (2 000) and its fee.
  await setRemainingLimit(net, root, key.address, 1_999n)
  const remaining = await remainingLimit(net, root.address, key.address)
  expect(remaining).toBe(1_999n)
  const balance = await balanceOf(root.address)

  const refused = await expectAccessKeyRefused(client.getChainId())
  expect(refused.amount).toBe(2_000n)
  expect(refused.fee).toBeGreaterThan(0n)
  expect(refused.message).toContain(
    `Access key: remaining limit 1999 of token ${net.currency} is below the ${2_000n + refused.fee} the payment spends of it (amount + fee).`,
  )
  // No top-up and no voucher were sent.
  expect(sent).toHaveLength(2)
  expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 1 })
  expect(await balanceOf(root.address)).toBe(balance)
})
