/**
 * Opt-in: the paid flow against a real Tempo network (a devnet or testnet) instead of the localnet.
 *
 *   VIEM_MPP_DEVNET_RPC_URL=https://…  VIEM_MPP_DEVNET_PAYER_KEY=0x…  VIEM_MPP_DEVNET_PAYEE_KEY=0x…
 *
 * Both keys must hold the network's pathUSD (the payee's pays the session's close). Unset, the file
 * prints why it did nothing: the networks are not reachable from the machines CI runs on.
 */
import { createPublicClient, type Hex, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { describe, expect, test } from 'vitest'
import { charge, mppHttp, session } from '../../src/index.js'
import { startLocalnet, startPaidRpc } from '../../src/testing/index.js'
import { tip20 } from '../support/localnet.js'

const rpcUrl = process.env.VIEM_MPP_DEVNET_RPC_URL
const payerKey = process.env.VIEM_MPP_DEVNET_PAYER_KEY as Hex | undefined
const payeeKey = process.env.VIEM_MPP_DEVNET_PAYEE_KEY as Hex | undefined
const configured = Boolean(rpcUrl && payerKey && payeeKey)

if (!configured)
  console.info(
    'devnet.test.ts: not run — set VIEM_MPP_DEVNET_RPC_URL, VIEM_MPP_DEVNET_PAYER_KEY and ' +
      'VIEM_MPP_DEVNET_PAYEE_KEY to pay a real Tempo devnet or testnet.',
  )

describe.runIf(configured)('on a real Tempo network', () => {
  const setUp = async (intent: 'charge' | 'session') => {
    const net = await startLocalnet({ rpcUrl, privateKeys: [payerKey as Hex] })
    const rpc = await startPaidRpc({
      upstream: net.rpcUrl,
      chain: net.chain,
      intent,
      payeePrivateKey: payeeKey,
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
