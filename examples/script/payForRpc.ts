/**
 * A backend script that reads a paid JSON-RPC endpoint with viem, paying each request with a
 * Tempo charge. It brings its own localnet and paid endpoint, so it runs anywhere:
 *
 *   npx tsx examples/script/payForRpc.ts
 *
 * Against a real endpoint, drop the two `start…` calls and use its URL, your chain and your key.
 */
import { createPublicClient, formatUnits, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { charge, mppHttp } from 'viem-mpp'
import { startLocalnet, startPaidRpc } from 'viem-mpp/testing'

const net = await startLocalnet()
const rpc = await startPaidRpc({ upstream: net.rpcUrl, chain: net.chain, price: 1_000n })

try {
  const [payer] = net.accounts
  if (!payer) throw new Error('the localnet has no funded account')
  const account = privateKeyToAccount(payer.privateKey)
  // Payments are prepared through a plain client: paying for them would recurse.
  const chainClient = createPublicClient({ chain: net.chain, transport: http(net.rpcUrl) })

  let spent = 0n
  const client = createPublicClient({
    chain: net.chain,
    transport: mppHttp(rpc.url, {
      provider: charge({ account, client: chainClient }),
      maxAmount: 10_000n, // never more than 0.01 pathUSD for one request
      budget: 100_000n, // nor more than 0.1 pathUSD in all
      onReceipt: ({ quote, receipt }) => {
        spent += quote.amount
        console.log(
          `paid ${formatUnits(quote.amount, 6)} pathUSD, transaction ${receipt?.reference}`,
        )
      },
    }),
  })

  console.log(`block number: ${await client.getBlockNumber()}`)
  console.log(`chain id: ${await client.getChainId()}`)
  console.log(`spent: ${formatUnits(spent, 6)} pathUSD in ${rpc.counters.payments.charge} payments`)
} finally {
  await rpc.stop()
  await net.stop()
}
