/**
 * `npm run localnet`: starts a Tempo localnet with the TIP-1034 channel reserve, prints its RPC URL
 * and dev accounts, and runs until interrupted.
 */
import { parseArgs } from 'node:util'
import { startLocalnet } from './localnet/startLocalnet.js'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    'chain-id': { type: 'string' },
  },
})

const net = await startLocalnet({
  port: values.port ? Number(values.port) : undefined,
  chainId: values['chain-id'] ? Number(values['chain-id']) : undefined,
})
console.log(`Tempo localnet (anvil, hardfork T4, TIP-1034 reserve) on chain ${net.chain.id}`)
console.log(`RPC URL: ${net.rpcUrl}`)
console.log(`Currency (pathUSD): ${net.currency}`)
console.log('Funded dev accounts:')
for (const { address, privateKey } of net.accounts) console.log(`  ${address}  ${privateKey}`)
console.log('Press Ctrl+C to stop.')

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, async () => {
    await net.stop()
    process.exit(0)
  })
