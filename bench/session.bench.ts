/**
 * Paid TIP-1034 session calls against one mppx session server on the localnet, side by side in
 * one run with unpaid calls through an equivalent server (bench/unpaidRpc.ts: the same loopback
 * hop to the same localnet, without the payment gate). The servers run in a child process
 * (bench/servers.ts), so the clients measured here do not share an event loop with them.
 *
 * Each group runs `callers` calls at once per iteration (`eth_blockNumber`, one HTTP request each
 * when unpaid): a group's calls per second are its hz × callers. The clients: the unpaid
 * baseline; the ceiling (one pre-signed voucher re-sent with every call: the server's own cost of
 * a paid call); the anchors, mppx's session manager and viem's `http()` over `Mppx.fetch`; and
 * viem-mpp's `mppHttp()` with `session()`. Every paying client has a dev account of its own, so
 * that no two share a channel, and opens its channel before the groups run (the deposit covers
 * the whole run: no top-up). Over the measured iterations (warm-up left out) each bench tallies
 * its calls, failed calls, the requests its server received and this process's CPU time; then
 * bench/ratio.ts prints the figures as ratios (see BENCHMARKS.md).
 */
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Challenge, Credential } from 'mppx'
import { Mppx, tempo } from 'mppx/client'
import { createClient, type HttpTransportConfig, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, bench, describe } from 'vitest'
import { mppHttp, type PaymentProvider, session } from '../src/index.js'
import { fileChannelStore } from '../src/node/index.js'
import { defineLocalnetChain } from '../src/testing/index.js'
import type { Counters, Ready } from './servers.js'

/** What a bench's measured iterations did, for bench/ratio.ts. */
export type SessionTally = {
  group: string
  callers: number
  name: string
  /**
   * Which client: `unpaid` (the baseline), `ceiling` (one pre-signed voucher: what no client can
   * beat through this server), `manager`, `mppxFetch` (the anchors), `viemMpp` (a memory store)
   * or `viemMppFile` (`fileChannelStore`: its mark written ahead, a lease renewed).
   */
  client: ClientKey
  /** Server that the client calls. */
  server: 'paid' | 'unpaid'
  calls: number
  failed: number
  /** HTTP requests the server received. */
  requests: number
  /** CPU time of this (the client's) process, in µs: user + system. */
  cpu: number
  /** CPU time of the servers' process (bench/servers.ts), in µs. */
  serverCpu: number
  error?: string | undefined
}

/** One paid call: resolves when its JSON-RPC result is in, rejects otherwise. */
type Call = () => Promise<unknown>
type ClientKey = 'unpaid' | 'ceiling' | 'manager' | 'mppxFetch' | 'viemMpp' | 'viemMppFile'

const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] })
const callers = [1, 10, 50] as const
const tallies: SessionTally[] = []

const servers = fork(new URL('./servers.ts', import.meta.url), {
  execArgv: ['--import', 'tsx'],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
})
/** Rejected once the servers' process has gone, so that nothing waits on it forever. */
const gone = new Promise<never>((_, reject) => {
  servers.once('error', reject)
  servers.once('exit', (code) => reject(new Error(`bench/servers.ts exited (${code})`)))
})
gone.catch(() => {})
const ready = Promise.race([
  new Promise<Ready>((resolve) => servers.once('message', resolve)),
  gone,
])
/** The servers' counters, asked over IPC (the answers come back in order). */
const waiting: ((counters: Counters) => void)[] = []
servers.on('message', (message: Counters | Ready) => {
  if (message.type === 'counters') waiting.shift()?.(message)
})
const counters = () =>
  Promise.race([
    new Promise<Counters>((resolve) => {
      waiting.push(resolve)
      servers.send({ type: 'counters' })
    }),
    gone,
  ])

const clients: Partial<Record<ClientKey, Call>> = {}
const storeDir = mkdtempSync(join(tmpdir(), 'viem-mpp-bench-'))
const store = fileChannelStore(join(storeDir, 'channels.db'))

beforeAll(async () => {
  const { chainId, rpcUrl, paidUrl, unpaidUrl, privateKeys } = await ready
  const chain = defineLocalnetChain({ id: chainId, rpcUrl })
  // Chain reads and open/top-up broadcasts go to the localnet itself, never through a paid hop.
  const client = createClient({ chain, transport: http(rpcUrl) })
  const getClient = () => client
  const account = (index: number) => privateKeyToAccount(privateKeys[index] as `0x${string}`)
  // viem's retries are off everywhere, so that a failed call shows as one.
  const viemClient = (
    url: string,
    options: HttpTransportConfig = {},
    provider?: PaymentProvider,
  ) => {
    const config = { retryCount: 0, ...options }
    const transport = provider ? mppHttp(url, { ...config, provider }) : http(url, config)
    const rpc = createClient({ transport })
    return () => rpc.request({ method: 'eth_blockNumber' })
  }

  clients.unpaid = viemClient(unpaidUrl)
  clients.ceiling = await ceilingClient(paidUrl, tempo.session({ account: account(4), getClient }))

  const manager = tempo.session.manager({ account: account(1), client })
  clients.manager = async () => {
    const response = await manager.fetch(paidUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    if (!response.ok) throw new Error(`mppx session manager: HTTP ${response.status}`)
    return response.json()
  }

  const mppx = Mppx.create({
    methods: [tempo.session({ account: account(2), getClient })],
    polyfill: false,
  })
  clients.mppxFetch = viemClient(paidUrl, { fetchFn: mppx.fetch })

  const provider = session({ account: account(3), client })
  clients.viemMpp = viemClient(paidUrl, {}, provider)
  clients.viemMppFile = viemClient(paidUrl, {}, session({ account: account(5), client, store }))

  // Each paid client opens its channel now, so that the benches measure reuse.
  for (const key of ['manager', 'mppxFetch', 'viemMpp', 'viemMppFile'] as const)
    await clients[key]?.()
}, 120_000)

afterAll(async () => {
  await measuring
  writeFileSync(
    new URL('./session-tallies.json', import.meta.url),
    `${JSON.stringify(tallies, null, 2)}\n`,
  )
  await store.close()
  rmSync(storeDir, { recursive: true, force: true })
  if (servers.connected) servers.send({ type: 'stop' })
  await gone.catch(() => {})
}, 60_000)

/**
 * The most a client can get out of this server: one HTTP request per call and no signing. It
 * opens a channel, then signs ONE voucher that pre-authorises more calls than a run makes (the
 * server accepts a voucher re-sent as is while it covers the price) and sends it with every call
 * through viem's `http()`, as a static header. The server still verifies it each time.
 */
async function ceilingClient(url: string, method: ReturnType<typeof tempo.session>) {
  const post = (authorization?: string) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(authorization && { authorization }) },
      body,
    })
  const challenge = Challenge.fromResponse(await post())
  const open = await method.createCredential({ challenge, context: undefined } as never)
  const opened = await post(open)
  if (!opened.ok) throw new Error(`ceiling client: the open got HTTP ${opened.status}`)
  const { channelId, descriptor } = Credential.deserialize<{
    channelId: string
    descriptor: unknown
  }>(open).payload
  const authorization = await method.createCredential({
    challenge,
    context: {
      action: 'voucher',
      channelId,
      descriptor,
      cumulativeAmountRaw: (BigInt(challenge.request.amount as string) * 100_000n).toString(),
    },
  } as never)
  const rpc = createClient({
    transport: http(url, { retryCount: 0, fetchOptions: { headers: { authorization } } }),
  })
  return () => rpc.request({ method: 'eth_blockNumber' })
}

/** The end-of-run counter read of the bench before, awaited before the next one starts. */
let measuring: Promise<unknown> = Promise.resolve()

/**
 * Registers `name` in the current group: each iteration makes `callers` calls at once through
 * `clients[client]` and waits for all of them. A failed call is counted, not thrown, so that one
 * failing client does not stop the others' figures.
 */
function sessionBench(
  group: string,
  n: number,
  name: string,
  client: ClientKey,
  server: SessionTally['server'],
) {
  const tally: SessionTally = {
    group,
    callers: n,
    name,
    client,
    server,
    calls: 0,
    failed: 0,
    requests: 0,
    cpu: 0,
    serverCpu: 0,
  }
  let start: Counters | undefined
  let cpuStart: NodeJS.CpuUsage | undefined
  bench(
    name,
    async () => {
      const call = clients[client]
      if (!call) throw new Error(`no client ${client}`)
      const results = await Promise.allSettled(Array.from({ length: n }, () => call()))
      tally.calls += n
      for (const result of results)
        if (result.status === 'rejected') {
          tally.failed++
          tally.error ??= String((result.reason as Error)?.message ?? result.reason).slice(0, 300)
        }
    },
    {
      time: 3_000,
      iterations: n === 50 ? 4 : 8,
      warmupTime: 300,
      warmupIterations: 2,
      async setup(_task, mode) {
        await measuring
        if (mode !== 'run') return
        Object.assign(tally, { calls: 0, failed: 0, requests: 0, error: undefined })
        start = await counters()
        cpuStart = process.cpuUsage()
      },
      teardown(_task, mode) {
        if (mode !== 'run') return
        const { user, system } = process.cpuUsage(cpuStart)
        tally.cpu = user + system
        measuring = counters().then((end) => {
          tally.requests = end[server] - (start?.[server] ?? 0)
          tally.serverCpu = end.cpu - (start?.cpu ?? 0)
          tallies.push(tally)
        })
      },
    },
  )
}

for (const n of callers) {
  const group = `session, ${n} concurrent caller${n === 1 ? '' : 's'}`
  describe(group, () => {
    sessionBench(group, n, 'unpaid http()', 'unpaid', 'unpaid')
    sessionBench(group, n, 'ceiling: http() + 1 pre-signed voucher', 'ceiling', 'paid')
    // mppx's session manager throws when a second request is in flight: 1 caller only.
    if (n === 1) sessionBench(group, n, 'mppx session.manager().fetch', 'manager', 'paid')
    sessionBench(group, n, 'http() + Mppx.fetch (tempo.session)', 'mppxFetch', 'paid')
    sessionBench(group, n, 'mppHttp() + session()', 'viemMpp', 'paid')
    sessionBench(group, n, 'mppHttp() + session(), fileChannelStore', 'viemMppFile', 'paid')
  })
}
