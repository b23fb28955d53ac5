/**
 * Opt-in: the paid flow against a real Tempo network (a devnet or testnet) instead of the localnet.
 *
 *   VIEM_MPP_DEVNET_RPC_URL=https://…  VIEM_MPP_DEVNET_PAYER_KEY=0x…
 *
 * The key must hold the network's pathUSD: it pays, and funds a fresh payee with what the
 * session's close costs it (or give the payee's own funded key as VIEM_MPP_DEVNET_PAYEE_KEY).
 * Unset, the file prints why it did nothing. CI runs it against the localnet reached as a remote
 * node (https under a test CA, a hostname that is not loopback): test/integration/devnetMode.test.ts.
 */
import { createClient, createPublicClient, type Hex, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Actions } from 'viem/tempo'
import { describe, expect, test } from 'vitest'
import { charge, mppHttp, session } from '../../src/index.js'
import { type Localnet, startLocalnet, startPaidRpc } from '../../src/testing/index.js'
import { tip20 } from '../support/localnet.js'

const rpcUrl = process.env.VIEM_MPP_DEVNET_RPC_URL
const payerKey = process.env.VIEM_MPP_DEVNET_PAYER_KEY as Hex | undefined
const configured = Boolean(rpcUrl && payerKey)

if (!configured)
  console.info(
    'devnet.test.ts: not run — set VIEM_MPP_DEVNET_RPC_URL and VIEM_MPP_DEVNET_PAYER_KEY (a key ' +
      "holding the network's pathUSD) to pay a real Tempo devnet or testnet.",
  )

/** What the payee's own transactions (a session's close) may cost it: 0.05 USD. */
const payeeFunds = 50_000n

/**
 * The payee's key: VIEM_MPP_DEVNET_PAYEE_KEY, else a fresh key the payer funds with
 * {@link payeeFunds}.
 */
async function payeeKeyOn(net: Localnet): Promise<Hex> {
  const given = process.env.VIEM_MPP_DEVNET_PAYEE_KEY as Hex | undefined
  if (given) return given
  const key = generatePrivateKey()
  const payer = createClient({
    account: privateKeyToAccount(payerKey as Hex),
    chain: net.chain,
    transport: http(net.rpcUrl),
  })
  await Actions.token.transferSync(payer, {
    to: privateKeyToAccount(key).address,
    amount: payeeFunds,
    token: net.currency,
  })
  return key
}

describe.runIf(configured)('on a real Tempo network', () => {
  const setUp = async (intent: 'charge' | 'session') => {
    const net = await startLocalnet({ rpcUrl, privateKeys: [payerKey as Hex] })
    const rpc = await startPaidRpc({
      upstream: net.rpcUrl,
      chain: net.chain,
      intent,
      payeePrivateKey: await payeeKeyOn(net),
    })
    const chainClient = createPublicClient({ chain: net.chain, transport: http(net.rpcUrl) })
    const balance = (address: Hex) =>
      chainClient.readContract({
        address: net.currency,
        abi: tip20,
        functionName: 'balanceOf',
        args: [address],
      })
    return { net, rpc, chainClient, balance, account: privateKeyToAccount(payerKey as Hex) }
  }

  test('a charge pays the payee exactly the price', async () => {
    const { net, rpc, chainClient, balance, account } = await setUp('charge')
    try {
      const before = await balance(rpc.payee)
      const client = createPublicClient({
        chain: net.chain,
        transport: mppHttp(rpc.url, { provider: charge({ account, client: chainClient }) }),
      })
      expect(await client.getChainId()).toBe(net.chain.id)
      expect((await balance(rpc.payee)) - before).toBe(rpc.price)
    } finally {
      await rpc.stop()
    }
  })

  test('a session opens one channel, pays vouchers, and closes refunding the rest', async () => {
    const { net, rpc, chainClient, balance, account } = await setUp('session')
    const deposit = 10n * rpc.price
    const provider = session({ account, client: chainClient, deposit, maxDeposit: deposit })
    const client = createPublicClient({
      chain: net.chain,
      cacheTime: 0,
      transport: mppHttp(rpc.url, { provider }),
    })
    try {
      for (let call = 0; call < 3; call++) await client.getBlockNumber()
      expect(rpc.counters.payments).toMatchObject({ open: 1, voucher: 2 })
      const payerBefore = await balance(account.address)
      const [closed] = await provider.close()
      expect(closed).toMatchObject({ settled: 3n * rpc.price, refunded: deposit - 3n * rpc.price })
      // The payee broadcasts the close: the payer gets the rest of its deposit back, fee-free.
      expect((await balance(account.address)) - payerBefore).toBe(deposit - 3n * rpc.price)
    } finally {
      await rpc.stop()
    }
  })
})
