/**
 * Runs the dApp against a fresh Tempo localnet:
 *
 *   npm run dapp            # then open the printed URL
 *   npm run dapp -- --ws    # the same page paying over a WebSocket, with a paid subscription
 *
 * It starts the localnet, funds a throwaway dev wallet, starts a paid RPC offering sessions (CORS
 * for the page), builds the page with Vite and serves it on 127.0.0.1 (`PORT`, default 5173).
 * Ctrl-C stops everything.
 */
import { startLocalnet } from 'viem-mpp/testing'
import { startDapp } from './start.js'

const net = await startLocalnet()
const transport = process.argv.includes('--ws') ? 'ws' : 'http'
const dapp = await startDapp({ net, port: Number(process.env.PORT ?? 5173), transport }).catch(
  async (error) => {
    await net.stop()
    throw error
  },
)
console.log(`dApp: ${dapp.page.url}`)
console.log(`paid RPC: ${dapp.rpc.url} (0.001 pathUSD per call, sessions)`)
console.log(`dev wallet: ${dapp.wallet} (localnet only)`)
console.log('Ctrl-C to stop.')

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.once(signal, async () => {
    if (stopping) return
    stopping = true
    await dapp.stop()
    await net.stop()
    process.exit(0)
  })
