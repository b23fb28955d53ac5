/**
 * The default provider's safety rules, on the localnet with a real mppx server: a per-payment cap
 * that `maxAmount` overrides, and no chain client on the paid endpoint itself.
 */
import { createClient, createPublicClient, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterEach, expect, test, vi } from 'vitest'
import {
  charge,
  defaultMaxAmount,
  mppHttp,
  PaymentRefusedError,
  PaymentRequiredError,
} from '../../src/index.js'
import { defineLocalnetChain } from '../../src/testing/index.js'
import { useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'

const localnet = useLocalnet()
afterEach(() => {
  vi.unstubAllEnvs()
})

const payer = () => localnet.net.accounts[6]!

test('the default cap is 1 USD (1_000_000 base units of a 6-decimal TIP-20 USD token)', () => {
  expect(defaultMaxAmount).toBe(1_000_000n)
})

test('the default provider refuses a payment above its cap, saying how to raise it; nothing paid', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ price: defaultMaxAmount + 1n })
  vi.stubEnv('TEMPO_PRIVATE_KEY', payer().privateKey)
  const payeeBefore = await localnet.balanceOf(rpc.payee)
  const payerBefore = await localnet.balanceOf(payer().address)

  const client = createPublicClient({ chain: net.chain, transport: mppHttp(rpc.url), cacheTime: 0 })
  const error = await rejectionOf(client.getChainId())

  expect(error).toBeInstanceOf(PaymentRefusedError)
  const refused = error as PaymentRefusedError
  expect(refused.reason).toBe('maxAmount')
  expect(refused.amount).toBe(1_000_001n)
  expect(refused.message).toContain('Limit: 1000000')
  expect(refused.message).toContain(
    'Without `maxAmount`, the default provider pays at most 1000000 base units (1 USD) per payment; pass `maxAmount` to mppHttp to change it.',
  )
  // The server saw the unpaid request only: no credential, nothing settled.
  expect(rpc.counters).toMatchObject({ requests: 1, challenges: 1, forwarded: 0 })
  expect(rpc.counters.payments.charge).toBe(0)
  expect(await localnet.balanceOf(rpc.payee)).toBe(payeeBefore)
  expect(await localnet.balanceOf(payer().address)).toBe(payerBefore)
})

test('the default provider pays up to its cap', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ price: defaultMaxAmount })
  vi.stubEnv('TEMPO_PRIVATE_KEY', payer().privateKey)
  const payeeBefore = await localnet.balanceOf(rpc.payee)

  const client = createPublicClient({ chain: net.chain, transport: mppHttp(rpc.url), cacheTime: 0 })
  expect(await client.getChainId()).toBe(net.chain.id)

  expect(rpc.counters.payments.charge).toBe(1)
  expect((await localnet.balanceOf(rpc.payee)) - payeeBefore).toBe(1_000_000n)
})

test('`maxAmount` raises the default cap', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ price: 2_500_000n })
  vi.stubEnv('TEMPO_PRIVATE_KEY', payer().privateKey)
  const payeeBefore = await localnet.balanceOf(rpc.payee)

  const client = createPublicClient({
    chain: net.chain,
    transport: mppHttp(rpc.url, { maxAmount: 2_500_000n }),
    cacheTime: 0,
  })
  expect(await client.getChainId()).toBe(net.chain.id)

  expect(rpc.counters.payments.charge).toBe(1)
  expect((await localnet.balanceOf(rpc.payee)) - payeeBefore).toBe(2_500_000n)
})

test('a provider given explicitly is not capped by the default', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ price: 2_500_000n })
  const payeeBefore = await localnet.balanceOf(rpc.payee)
  const provider = charge({
    account: privateKeyToAccount(payer().privateKey),
    client: createClient({ chain: net.chain, transport: http(net.rpcUrl) }),
  })

  const client = createPublicClient({
    chain: net.chain,
    transport: mppHttp(rpc.url, { provider }),
    cacheTime: 0,
  })
  expect(await client.getChainId()).toBe(net.chain.id)

  expect((await localnet.balanceOf(rpc.payee)) - payeeBefore).toBe(2_500_000n)
})

test.each([
  ['the URL given to mppHttp', (url: string) => url],
  ['no URL: the chain default', () => undefined],
  [
    'the same URL written otherwise',
    (url: string) => url.replace('http:', 'HTTP:').replace('?', '/?'),
  ],
])(
  "the chain's RPC is the paid endpoint (%s): PaymentRequiredError saying so, nothing signed",
  async (_, transportUrl) => {
    const { net } = localnet
    const rpc = await localnet.startPaidRpc()
    // A path and query standing in for an API key: they must not show in the error.
    const paidUrl = `${rpc.url}/v1/secret-api-key?token=hunter2`
    const chain = defineLocalnetChain({ id: net.chain.id, rpcUrl: paidUrl })
    vi.stubEnv('TEMPO_PRIVATE_KEY', payer().privateKey)

    const client = createPublicClient({
      chain,
      transport: mppHttp(transportUrl(paidUrl)),
      cacheTime: 0,
    })
    const error = await rejectionOf(client.getChainId())

    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('paidChainRpc')
    expect((error as PaymentRequiredError).shortMessage).toBe(
      "The default provider cannot pay: the chain's RPC is this paid endpoint, and preparing a payment reads the chain through it.",
    )
    expect(error.message).toContain('Endpoint: http://127.0.0.1:')
    expect(error.message).toContain('provider: tempo({ account, client })')
    expect(error.message).not.toContain('secret-api-key')
    expect(error.message).not.toContain('hunter2')
    // The one unpaid request, answered 402; no credential was made or sent.
    expect(rpc.counters).toMatchObject({ requests: 1, challenges: 1, forwarded: 0 })
    expect(rpc.counters.payments.charge).toBe(0)
  },
)
