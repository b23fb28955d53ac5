/**
 * Runs payForRpc.ts as you would, twice, against a Tempo localnet and a paid RPC offering a
 * session and a charge, with a throwaway TEMPO_HOME and the localnet's first funded key:
 *
 *   npm run example:script
 *
 * The first run opens a channel (deposits) and pays vouchers; the second finds the channel in
 * `$TEMPO_HOME/wallet/channels.db` and only pays vouchers.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startLocalnet, startPaidRpc } from 'viem-mpp/testing'

const net = await startLocalnet()
const rpc = await startPaidRpc({
  upstream: net.rpcUrl,
  chain: net.chain,
  intent: ['session', 'charge'],
  price: 1_000n, // 0.001 pathUSD per HTTP request
})
const home = await mkdtemp(join(tmpdir(), 'viem-mpp-example-'))
try {
  const [payer] = net.accounts
  if (!payer) throw new Error('the localnet has no funded account')
  const env = {
    ...process.env,
    PAID_RPC_URL: rpc.url,
    LOCALNET_RPC_URL: net.rpcUrl,
    TEMPO_PRIVATE_KEY: payer.privateKey,
    TEMPO_HOME: home,
  }
  const script = new URL('./payForRpc.ts', import.meta.url).pathname
  for (const run of [1, 2]) {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], {
      env,
    })
    process.stdout.write(`run ${run}:\n${stdout}`)
  }
  const { open, voucher, charge } = rpc.counters.payments
  console.log(`server: ${open} channel opened, ${voucher} vouchers, ${charge} charges`)
} finally {
  await rm(home, { recursive: true, force: true })
  await rpc.stop()
  await net.stop()
}
