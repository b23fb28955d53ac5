/**
 * The servers of the session benchmarks, in a child process of their own so that the clients
 * being measured do not share an event loop with them (as with a remote endpoint): a localnet, one
 * mppx session server in front of it, and the unpaid baseline (bench/unpaidRpc.ts) in front of
 * the same localnet. Started by bench/session.bench.ts with `fork()`; it answers `counters`
 * messages, and stops everything on `stop` or when its parent goes away.
 */
import type { Hex } from 'viem'
import { startLocalnet, startPaidRpc } from '../src/testing/index.js'
import { startUnpaidRpc } from './unpaidRpc.js'

/** What the child sends once its servers answer. */
export type Ready = {
  type: 'ready'
  chainId: number
  rpcUrl: string
  paidUrl: string
  unpaidUrl: string
  price: string
  privateKeys: Hex[]
}

/**
 * In answer to a `counters` message: the HTTP requests each server has received so far, and the
 * CPU time this process has used (µs, user + system: the servers and the localnet's shim).
 */
export type Counters = { type: 'counters'; paid: number; unpaid: number; cpu: number }

/** A deposit no benchmark run can use up: 1 000 000 calls at the default price. */
const deposit = 10n ** 9n

const send = (message: Ready | Counters) => process.send?.(message)

const net = await startLocalnet()
const rpc = await startPaidRpc({
  upstream: net.rpcUrl,
  chain: net.chain,
  intent: 'session',
  suggestedDeposit: deposit,
})
const unpaid = await startUnpaidRpc({ upstream: net.rpcUrl })

let stopping: Promise<void> | undefined
const stop = () => {
  stopping ??= Promise.allSettled([rpc.stop(), unpaid.stop()])
    .then(() => net.stop())
    .finally(() => process.exit(0))
  return stopping
}
process.on('disconnect', stop)
process.on('message', (message: { type: string }) => {
  if (message.type === 'stop') return void stop()
  if (message.type !== 'counters') return
  const { user, system } = process.cpuUsage()
  send({
    type: 'counters',
    paid: rpc.counters.requests,
    unpaid: unpaid.counters.requests,
    cpu: user + system,
  })
})

send({
  type: 'ready',
  chainId: net.chain.id,
  rpcUrl: net.rpcUrl,
  paidUrl: rpc.url,
  unpaidUrl: unpaid.url,
  price: rpc.price.toString(),
  privateKeys: net.accounts.map(({ privateKey }) => privateKey),
})
