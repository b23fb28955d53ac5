import { createClient, createPublicClient, type Hex, http } from 'viem'
import { Account, Selectors } from 'viem/tempo'
import { beforeAll, expect, test } from 'vitest'
import { charge, mppHttp, session } from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import { authorizedKey, fundedRoot } from '../support/accessKeys.js'
import { useLocalnet } from '../support/localnet.js'

// How often one access-key payment reads the keychain's `getKey`: once, whether the key's
// registration was unknown (the read that decides whether to attach its authorization is the one
// its limits are checked against) or known.

const localnet = useLocalnet()
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

const price = 1_000n
const now = () => Math.floor(Date.now() / 1000)

/** A chain client on the localnet counting the keychain `getKey` reads since the last `take`. */
function countingChainClient() {
  let getKeyReads = 0
  const fetchFn: typeof fetch = async (input, init) => {
    const message = JSON.parse(String(init?.body)) as { method: string; params?: [{ data?: Hex }] }
    if (
      message.method === 'eth_call' &&
      message.params?.[0]?.data?.startsWith(Selectors.accountKeychain.getKey)
    )
      getKeyReads++
    return fetch(input, init)
  }
  return {
    client: createClient({ chain: net.chain, transport: http(net.rpcUrl, { fetchFn }) }),
    take() {
      const reads = getKeyReads
      getKeyReads = 0
      return reads
    },
  }
}

const paidClient = (url: string, provider: ReturnType<typeof charge>) =>
  createPublicClient({ chain: net.chain, cacheTime: 0, transport: mppHttp(url, { provider }) })

test('a charge reads getKey once: the first (key unknown, then provisioned), later ones, and after a reload', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot(net, 1_000_000n)
  const key = await authorizedKey(net, root, { expiry: now() + 3600, limit: 500_000n })
  const chain = countingChainClient()
  const client = paidClient(rpc.url, charge({ account: key.account, client: chain.client }))

  // Unknown registration: read to decide whether to attach the authorization; missing, the
  // payment is judged by the authorization without a second read.
  expect(await client.getBlockNumber()).toBeGreaterThan(0n)
  expect(chain.take()).toBe(1)
  // Provisioned: read once for the limits.
  expect(await client.getChainId()).toBe(net.chain.id)
  expect(chain.take()).toBe(1)

  // A page reload: a new account object of the same key, its authorization given again. The read
  // finds the key on chain; the limit check uses it.
  const again = Account.fromSecp256k1(key.privateKey, {
    access: root,
    keyAuthorization: key.keyAuthorization,
  })
  const reloaded = paidClient(rpc.url, charge({ account: again, client: chain.client }))
  expect(await reloaded.getBlockNumber()).toBeGreaterThan(0n)
  expect(chain.take()).toBe(1)
})

test("a fresh key's channel open reads getKey once; the vouchers after it read nothing", async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', price, suggestedDeposit: 20_000n })
  const root = await fundedRoot(net, 1_000_000n)
  const key = await authorizedKey(net, root, { expiry: now() + 3600, limit: 500_000n })
  const chain = countingChainClient()
  const client = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: mppHttp(rpc.url, {
      provider: session({ account: key.account, client: chain.client }),
    }),
  })
  expect(await client.getBlockNumber()).toBeGreaterThan(0n)
  expect(chain.take()).toBe(1)
  expect(await client.getChainId()).toBe(net.chain.id)
  expect(await client.getChainId()).toBe(net.chain.id)
  expect(chain.take()).toBe(0)
  expect(rpc.counters.payments).toMatchObject({ open: 1, voucher: 2 })
})
