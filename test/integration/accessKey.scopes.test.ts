import { createClient, createPublicClient, getAddress, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Abis, Account, Actions, Addresses, Selectors } from 'viem/tempo'
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
  fundedRoot as fundedRootOf,
  provisionedKey,
  setRemainingLimit,
} from '../support/accessKeys.js'
import { challengedOnce, noPayments } from '../support/counters.js'
import { useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'

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
const plain = () =>
  createPublicClient({ chain: net.chain, transport: http(net.rpcUrl), cacheTime: 0 })
const chainClient = () => createClient({ chain: net.chain, transport: http(net.rpcUrl) })
const fundedRoot = () => fundedRootOf(net, funding)

/** A public client on `url` through mppHttp with `provider`, recording the credentials sent. */
function paidClient(url: string, provider: ReturnType<typeof charge>) {
  const sent: PaymentEvent[] = []
  const client = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: mppHttp(url, { provider, onPaymentSent: (event) => sent.push(event) }),
  })
  return { client, sent }
}

/** The refusal of `promise`, checked to be an access-key refusal. */
async function refusal(promise: Promise<unknown>) {
  const error = await rejectionOf(promise)
  expect(error).toBeInstanceOf(PaymentRefusedError)
  const refused = error as PaymentRefusedError
  expect(refused.reason).toBe('accessKeyLimit')
  expect(refused.shortMessage).toBe(
    'The access key cannot make the payment (revoked, expired, over its spending limit, or not allowed the call); nothing was signed or paid.',
  )
  return refused
}

test("a key on chain whose scopes allow only another function of the token: the charge's transferWithMemo is refused before signing", async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price: 1_000n })
  const root = await fundedRoot()
  const key = await provisionedKey(net, root, {
    limit: 500_000n,
    scopes: [{ address: net.currency, selector: transfer }],
  })
  const balance = await balanceOf(root.address)
  const { client, sent } = paidClient(
    rpc.url,
    charge({ account: key.account, client: chainClient() }),
  )

  const refused = await refusal(client.getChainId())
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
  const elsewhere = await provisionedKey(net, root, {
    limit: 500_000n,
    scopes: [{ address: net.currency, selector: transferWithMemo, recipients: [other] }],
  })
  const balance = await balanceOf(root.address)
  const refusedClient = paidClient(
    rpc.url,
    charge({ account: elsewhere.account, client: chainClient() }),
  )
  const refused = await refusal(refusedClient.client.getChainId())
  expect(refused.message).toContain(
    `Access key: its call scopes do not allow transferWithMemo (${transferWithMemo}) on ${currency()} to ${rpc.payee}; they allow ${transferWithMemo} on ${currency()} to ${other}.`,
  )
  expect(refusedClient.sent).toEqual([])
  expect(await balanceOf(root.address)).toBe(balance)

  // The same scope naming the payee allows the charge.
  const allowed = await provisionedKey(net, root, {
    limit: 500_000n,
    scopes: [{ address: net.currency, selector: transferWithMemo, recipients: [rpc.payee] }],
  })
  const payeeBefore = await balanceOf(rpc.payee)
  const paid = paidClient(rpc.url, charge({ account: allowed.account, client: chainClient() }))
  expect(await paid.client.getChainId()).toBe(net.chain.id)
  expect(paid.sent).toHaveLength(1)
  expect(rpc.counters.payments).toEqual({ ...noPayments, charge: 1 })
  expect((await balanceOf(rpc.payee)) - payeeBefore).toBe(price)
})

test("a key whose scopes allow only the token: the session open is refused before signing, naming the reserve's open", async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const root = await fundedRoot()
  const key = await provisionedKey(net, root, {
    limit: 500_000n,
    scopes: [{ address: net.currency }],
  })
  const balance = await balanceOf(root.address)
  const { client, sent } = paidClient(
    rpc.url,
    session({ account: key.account, client: chainClient() }),
  )

  const refused = await refusal(client.getChainId())
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
  const key = await provisionedKey(net, root, {
    limit: 500_000n,
    scopes: [{ address: reserve, selector: open }],
  })
  const { client, sent } = paidClient(
    rpc.url,
    session({ account: key.account, client: chainClient() }),
  )
  // The deposit covers two calls: an open and a voucher.
  for (let i = 0; i < 2; i++) await client.getChainId()
  const balance = await balanceOf(root.address)

  const refused = await refusal(client.getChainId())
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
  const privateKey = generatePrivateKey()
  const address = privateKeyToAccount(privateKey).address
  // The root wallet's authorization, scoped to the reserve: no token transfers.
  const keyAuthorization = await root.signKeyAuthorization(
    { address, type: 'secp256k1' },
    {
      chainId: BigInt(net.chain.id),
      expiry: Math.floor(Date.now() / 1000) + 3600,
      limits: [{ token: net.currency, limit: 500_000n }],
      scopes: [
        { address: reserve, selector: 'open(address,address,address,uint96,bytes32,address)' },
      ],
    },
  )
  const account = Account.fromSecp256k1(privateKey, { access: root, keyAuthorization })
  const { client, sent } = paidClient(rpc.url, charge({ account, client: chainClient() }))

  const refused = await refusal(client.getChainId())
  expect(refused.message).toContain(
    `Access key: its call scopes do not allow transferWithMemo (${transferWithMemo}) on ${currency()} to ${rpc.payee}; they allow ${open} on ${reserve}.`,
  )
  expect(sent).toEqual([])
  expect(rpc.counters).toEqual(challengedOnce)
  expect(await balanceOf(root.address)).toBe(funding)
  const metadata = await Actions.accessKey.getMetadata(plain(), {
    account: root.address,
    accessKey: address,
  })
  expect(metadata.address).toBe('0x0000000000000000000000000000000000000000')
})

test("a key not on chain whose authorization's scopes allow the charge: its first charge provisions it, scopes included; the next one pays too", async () => {
  const price = 1_000n
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot()
  const privateKey = generatePrivateKey()
  const address = privateKeyToAccount(privateKey).address
  const keyAuthorization = await root.signKeyAuthorization(
    { address, type: 'secp256k1' },
    {
      chainId: BigInt(net.chain.id),
      expiry: Math.floor(Date.now() / 1000) + 3600,
      limits: [{ token: net.currency, limit: 500_000n }],
      scopes: [{ address: net.currency, selector: transferWithMemo, recipients: [rpc.payee] }],
    },
  )
  const account = Account.fromSecp256k1(privateKey, { access: root, keyAuthorization })
  const payeeBefore = await balanceOf(rpc.payee)
  const { client, sent } = paidClient(rpc.url, charge({ account, client: chainClient() }))

  expect(await client.getChainId()).toBe(net.chain.id)
  expect(await client.getBlockNumber()).toBeTypeOf('bigint')
  expect(sent).toHaveLength(2)
  expect(rpc.counters.payments).toEqual({ ...noPayments, charge: 2 })
  expect((await balanceOf(rpc.payee)) - payeeBefore).toBe(2n * price)
  const metadata = await Actions.accessKey.getMetadata(plain(), {
    account: root.address,
    accessKey: address,
  })
  expect(metadata.address).toBe(address)
  const [isScoped, scopes] = await plain().readContract({
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
  const key = await provisionedKey(net, root, { limit: 500_000n })
  const { client, sent } = paidClient(
    rpc.url,
    session({ account: key.account, client: chainClient() }),
  )
  for (let i = 0; i < 2; i++) await client.getChainId()
  // What is left of the key's limit is below the next top-up (2 000) and its fee.
  await setRemainingLimit(net, root, key.address, 1_999n)
  const { remaining } = await Actions.accessKey.getRemainingLimit(plain(), {
    account: root.address,
    accessKey: key.address,
    token: net.currency,
  })
  expect(remaining).toBe(1_999n)
  const balance = await balanceOf(root.address)

  const refused = await refusal(client.getChainId())
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
