/**
 * Integration tests of code that pays for JSON-RPC, against a real Tempo localnet (anvil) and a
 * real mppx server that sells access to it, both started by `viem-mpp/testing`:
 *
 *   npm run example:vitest
 *
 * (in your project: `npx vitest run`, with `@foundry-rs/anvil` installed as a dev dependency).
 */
import { createClient, createPublicClient, erc20Abi, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { mppHttp, PaymentRefusedError, session } from 'viem-mpp'
import { type Localnet, type PaidRpc, startLocalnet, startPaidRpc } from 'viem-mpp/testing'
import { afterAll, beforeAll, expect, test } from 'vitest'

let net: Localnet
let rpc: PaidRpc

beforeAll(async () => {
  net = await startLocalnet()
  rpc = await startPaidRpc({ upstream: net.rpcUrl, chain: net.chain, intent: 'session' })
})

afterAll(async () => {
  await rpc?.stop()
  await net?.stop()
})

/** A client that pays `rpc` with a session of the localnet's first account. */
function payingClient(config: { maxAmount?: bigint } = {}) {
  const [payer] = net.accounts
  if (!payer) throw new Error('the localnet has no funded account')
  const provider = session({
    account: privateKeyToAccount(payer.privateKey),
    // Channel transactions go through the localnet's own RPC: paying for them would recurse.
    client: createClient({ chain: net.chain, transport: http(net.rpcUrl) }),
  })
  const paid: bigint[] = []
  const client = createPublicClient({
    chain: net.chain,
    // No caching: each call below is one paid request.
    cacheTime: 0,
    transport: mppHttp(rpc.url, {
      provider,
      onReceipt: ({ quote }) => paid.push(quote.amount),
      ...config,
    }),
  })
  return { client, paid, provider }
}

test('pays one voucher per request, and the close settles exactly that', async () => {
  rpc.resetCounters()
  const { client, paid, provider } = payingClient()
  // Balances are read through the localnet's own RPC, so that reading them costs nothing.
  const chain = createPublicClient({ chain: net.chain, transport: http(net.rpcUrl), cacheTime: 0 })
  const balance = () =>
    chain.readContract({
      address: net.currency,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [rpc.payee],
    })
  const before = await balance()

  await client.getBlockNumber()
  await client.getBlockNumber()
  await client.getBlockNumber()

  expect(paid).toEqual([1000n, 1000n, 1000n])
  expect(rpc.counters.payments).toMatchObject({ open: 1, voucher: 2, charge: 0 })
  // A session pays before the server asks: 3 paid calls, 4 HTTP requests (one 402 to start).
  expect(rpc.counters.requests).toBe(4)

  const [closed] = await provider.close()
  expect(closed).toMatchObject({ settled: 3000n, refunded: 1_000_000n - 3000n })
  // The server sent the close, paying its fee in pathUSD: gas × price, from 18 decimals to 6.
  const { from, gasUsed, effectiveGasPrice } = await chain.getTransactionReceipt({
    hash: closed?.txHash ?? '0x',
  })
  expect(from.toLowerCase()).toBe(rpc.payee.toLowerCase())
  const fee = (gasUsed * effectiveGasPrice + 10n ** 12n - 1n) / 10n ** 12n
  expect((await balance()) - before).toBe(3000n - fee)
})

test('refuses a deposit above maxAmount, and nothing is paid', async () => {
  rpc.resetCounters()
  const { client, paid } = payingClient({ maxAmount: 10_000n })

  await expect(client.getBlockNumber()).rejects.toThrow(PaymentRefusedError)
  expect(paid).toEqual([])
  expect(rpc.counters.forwarded).toBe(0)
})
