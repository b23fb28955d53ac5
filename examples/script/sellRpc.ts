/**
 * Selling RPC access: an mppx server that charges for every JSON-RPC request to an upstream node
 * and settles the payments on chain. Here the upstream is a fresh localnet; point `upstream` at
 * your own node (and `payeePrivateKey` at your key) to run it for real.
 *
 *   npx tsx examples/script/sellRpc.ts
 */
import { startLocalnet, startPaidRpc } from 'viem-mpp/testing'

const net = await startLocalnet()
const rpc = await startPaidRpc({
  upstream: net.rpcUrl,
  chain: net.chain,
  intent: ['session', 'charge'], // offer both; clients pick
  price: 1_000n, // 0.001 pathUSD per HTTP request
})
console.log(`paid RPC: ${rpc.url} (payee ${rpc.payee}); press Ctrl+C to stop`)

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, async () => {
    console.log(`served ${rpc.counters.forwarded} paid requests`)
    await rpc.stop()
    await net.stop()
    process.exit(0)
  })
