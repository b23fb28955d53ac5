/**
 * The key-authorization path of an access key: a server that says the key is missing to a
 * voucher (the open provisioned it), an authorization that expired before the chain saw it, and a
 * root with no funds — each refused typed, nothing signed that should not be.
 */
import { createClient, http } from 'viem'
import { beforeAll, expect, test } from 'vitest'
import { charge, PaymentFailedError, session } from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import {
  authorizedKey,
  expectRefused,
  fundedRoot,
  keyDoesNotExist,
  recordingPaidClient,
  startKeyRejectingProxy,
} from '../support/accessKeys.js'
import { noPayments } from '../support/counters.js'
import { useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'

const localnet = useLocalnet()
const { balanceOf } = localnet
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

const now = () => Math.floor(Date.now() / 1000)

/** The chain client of the providers, logging whether each fill carried a key authorization. */
function chainClient() {
  const fills: boolean[] = []
  const fetchFn: typeof fetch = async (input, init) => {
    const message = JSON.parse(String(init?.body)) as {
      method: string
      params?: [{ keyAuthorization?: unknown }]
    }
    if (message.method === 'eth_fillTransaction')
      fills.push(!!message.params?.[0]?.keyAuthorization)
    return fetch(input, init)
  }
  return {
    client: createClient({ chain: net.chain, transport: http(net.rpcUrl, { fetchFn }) }),
    fills,
  }
}

const paidClient = (url: string, provider: ReturnType<typeof charge>) =>
  recordingPaidClient(net, url, provider)

test('a voucher answered "access key does not exist" (the open provisioned the key): PaymentFailedError at once, no re-authorization, no new channel', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 100_000n })
  const proxy = await startKeyRejectingProxy(rpc.url, {
    rejects: (_, payload) => payload.action === 'voucher',
    problem: keyDoesNotExist,
  })
  try {
    const root = await fundedRoot(net, 2_000_000n)
    const key = await authorizedKey(net, root, { limit: 1_500_000n })
    const chain = chainClient()
    const { client, sent, receipts } = paidClient(
      proxy.url,
      session({ account: key.account, client: chain.client }),
    )
    expect(await client.getChainId()).toBe(net.chain.id)

    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(false)
    // The open, then one voucher: not paid again after the lie.
    expect(sent.map(({ quote }) => quote.deposit)).toEqual([100_000n, 0n])
    expect(receipts).toHaveLength(1)
    expect(proxy.counts).toEqual({ paid: 2, rejected: 1 })
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1 })
    // One transaction, the open, carried the authorization; nothing was prepared since.
    expect(chain.fills).toEqual([true])
  } finally {
    await proxy.stop()
  }
})

test('a session open with a key authorization that expired, the chain lacking the key: accessKeyLimit, nothing signed', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 100_000n })
  const root = await fundedRoot(net, 2_000_000n)
  const expiry = now() - 60
  const key = await authorizedKey(net, root, { expiry, limit: 1_500_000n })
  const chain = chainClient()
  const { client, sent } = paidClient(
    rpc.url,
    session({ account: key.account, client: chain.client }),
  )

  const error = await expectRefused(client.getChainId(), 'accessKeyLimit')
  expect(error.message).toContain(
    `Access key: expired at ${new Date(expiry * 1000).toISOString()} (unix ${expiry}).`,
  )
  expect(sent).toEqual([])
  expect(rpc.counters.payments).toEqual(noPayments)
  expect(await balanceOf(root.address)).toBe(2_000_000n)
})

test.each([
  ['charge', (account: never, client: never) => charge({ account, client })],
  ['session', (account: never, client: never) => session({ account, client })],
] as const)(
  'an access key whose root has no funds: insufficientFunds before signing (%s)',
  async (intent, provider) => {
    const rpc = await localnet.startPaidRpc({ intent, suggestedDeposit: 100_000n })
    const root = await fundedRoot(net, 0n)
    const key = await authorizedKey(net, root, { limit: 1_500_000n })
    const chain = chainClient()
    const { client, sent } = paidClient(
      rpc.url,
      provider(key.account as never, chain.client as never),
    )

    await expectRefused(client.getChainId(), 'insufficientFunds')
    expect(sent).toEqual([])
    expect(rpc.counters.payments).toEqual(noPayments)
  },
)
