import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { numberToHex } from 'viem'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { session } from '../../src/index.js'
import { fileChannelStore } from '../../src/node/index.js'
import type { PaidRpc } from '../../src/testing/index.js'
import { useLocalnet } from '../support/localnet.js'
import { payerRuns, type RunResult } from '../support/payerRuns.js'
import { seededRandom } from '../support/random.js'
import { sessionHelpers } from '../support/sessions.js'

/**
 * Payer processes that pay one paid RPC with `session()` on one `fileChannelStore`, one after the
 * other, at once, or killed mid-run. What is asserted is the counterparty's truth (what the
 * server holds, and what the chain settles), never what the payer believes: the highest voucher
 * the payee holds on each channel is exactly what it served, and at most `writeAhead` (10)
 * prices above it after a crash.
 */

const localnet = useLocalnet()
const helpers = sessionHelpers(localnet)

/** The default `writeAhead` of `session()`. */
const writeAhead = 10n

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'viem-mpp-runs-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})
const runs = payerRuns(localnet)
type RunOptions = Parameters<typeof runs.startRun>[2]
const { channelsOf, report, settleAll, expectExact } = runs
/** A payer run on the test's file store. */
const startRun = (rpc: PaidRpc, account: number, options: Omit<RunOptions, 'store'>) =>
  runs.startRun(rpc, account, { store: join(dir, 'channels.db'), ...options })
const run = (rpc: PaidRpc, account: number, options: Omit<RunOptions, 'store'>) =>
  runs.run(rpc, account, { store: join(dir, 'channels.db'), ...options })
const runTogether = (rpc: PaidRpc, account: number, options: Omit<RunOptions, 'store'>[]) =>
  runs.runTogether(
    rpc,
    account,
    options.map((option) => ({ store: join(dir, 'channels.db'), ...option })),
  )

test('a run of 3 calls, then a run of 1 on the same store: one channel, the server holds exactly 4 prices', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const payer = localnet.net.accounts[0]!.address
  const fromBlock = await helpers.blockNumber()
  const first = await run(rpc, 0, { calls: 3 })
  const second = await run(rpc, 0, { calls: 1 })
  expect([first, second].map(({ ok, failed }) => ({ ok, failed }))).toEqual([
    { ok: 3, failed: 0 },
    { ok: 1, failed: 0 },
  ])
  const channels = await expectExact('3 then 1', rpc, payer, fromBlock, 4)
  expect(channels).toHaveLength(1)
  expect(channels[0]!.highestVoucher).toBe(4n * rpc.price)
}, 60_000)

test('ten runs of one call each: one channel, exactly 10 prices', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const payer = localnet.net.accounts[1]!.address
  const fromBlock = await helpers.blockNumber()
  const results: RunResult[] = []
  for (let i = 0; i < 10; i++) results.push(await run(rpc, 1, { calls: 1 }))
  expect(results.map(({ ok, errors }) => ({ ok, errors }))).toEqual(
    Array(10).fill({ ok: 1, errors: [] }),
  )
  const channels = await expectExact('10 × 1', rpc, payer, fromBlock, 10)
  expect(channels).toHaveLength(1)
  expect(channels[0]!.highestVoucher).toBe(10n * rpc.price)
}, 120_000)

test('two processes at once, 20 calls each, 5 in flight: at most 2 channels, each exact', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const payer = localnet.net.accounts[2]!.address
  const fromBlock = await helpers.blockNumber()
  const results = await runTogether(rpc, 2, [
    { calls: 20, concurrency: 5 },
    { calls: 20, concurrency: 5 },
  ])
  console.log(`[2 × 20] results ${JSON.stringify(results)}`)
  const ok = results.reduce((sum, { ok }) => sum + ok, 0)
  expect(ok).toBe(40)
  const channels = await expectExact('2 processes × 20', rpc, payer, fromBlock, ok)
  expect(channels.length).toBeGreaterThanOrEqual(1)
  expect(channels.length).toBeLessThanOrEqual(2)
}, 90_000)

test('four processes at once, 10 calls each: at most 4 channels, each exact', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const payer = localnet.net.accounts[3]!.address
  const fromBlock = await helpers.blockNumber()
  const results = await runTogether(
    rpc,
    3,
    Array.from({ length: 4 }, () => ({ calls: 10 })),
  )
  console.log(`[4 × 10] results ${JSON.stringify(results)}`)
  const ok = results.reduce((sum, { ok }) => sum + ok, 0)
  expect(ok).toBe(40)
  const channels = await expectExact('4 processes × 10', rpc, payer, fromBlock, ok)
  expect(channels.length).toBeGreaterThanOrEqual(1)
  expect(channels.length).toBeLessThanOrEqual(4)
}, 90_000)

test('release() and close() endings: the ledger is exact across them, and close settles exactly', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const payer = localnet.net.accounts[5]!.address
  const fromBlock = await helpers.blockNumber()
  const results = [
    await run(rpc, 5, { calls: 2, ending: 'release' }),
    await run(rpc, 5, { calls: 3, ending: 'exit' }),
    await run(rpc, 5, { calls: 2, ending: 'release' }),
  ]
  expect(results.map(({ ok }) => ok)).toEqual([2, 3, 2])
  // Before the close: exact as the server holds it.
  const before = await channelsOf(rpc, payer, fromBlock)
  report('release/exit/release', 7, before, rpc.price)
  expect(before).toHaveLength(1)
  expect(before[0]!.highestVoucher).toBe(7n * rpc.price)
  expect(before[0]!.spent).toBe(7n * rpc.price)

  const last = await run(rpc, 5, { calls: 1, ending: 'close' })
  console.log(`[close] result ${JSON.stringify(last)}`)
  expect(last).toMatchObject({ ok: 1, failed: 0 })
  const channels = await channelsOf(rpc, payer, fromBlock)
  report('… then 1 call and close()', 8, channels, rpc.price)
  expect(channels).toHaveLength(1)
  const [channel] = channels
  expect(channel!.highestVoucher).toBe(8n * rpc.price)
  expect(channel!.spent).toBe(8n * rpc.price)
  // The close settled exactly what was served, and refunded the rest of the deposit.
  const closedLogs = await helpers.channelEvents('ChannelClosed', payer, fromBlock)
  const onChain = closedLogs.map((log) => (log.args as { settledToPayee: bigint }).settledToPayee)
  console.log(
    `[close] closed ${JSON.stringify(last.closed)}, settled on chain ${onChain.join(', ')}`,
  )
  expect(onChain).toEqual([8n * rpc.price])
  expect(last.closed?.map(({ settled }) => settled)).toEqual([String(8n * rpc.price)])
  // A closed channel leaves the store.
  const store = fileChannelStore(join(dir, 'channels.db'))
  try {
    expect(await store.list()).toEqual([])
  } finally {
    await store.close()
  }
}, 120_000)

test('SIGKILL at random points during paid calls, 10 times, then a normal run: the bound holds, the channel is reused, no lease is stuck', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const payer = localnet.net.accounts[4]!.address
  const fromBlock = await helpers.blockNumber()
  const seed = Number(process.env.SESSION_RUNS_SEED ?? Date.now() % 1_000_000)
  const random = seededRandom(seed)
  const kills: string[] = []
  for (let i = 0; i < 10; i++) {
    const started = await startRun(rpc, 4, { calls: 30, concurrency: 3, progress: true })
    // Some runs die before their first call is through (the first one possibly mid-open),
    // the others after a random number of calls, a random moment later.
    const lines = Math.floor(random() * 8)
    const delay = Math.floor(random() * (lines === 0 ? 400 : 40))
    started.go()
    let seen = 0
    while (seen < lines) {
      const line = await started.nextLine()
      if (line.startsWith('progress ')) seen++
      else break
    }
    await new Promise((resolve) => setTimeout(resolve, delay))
    started.child.kill('SIGKILL')
    const { signal } = await started.exited
    kills.push(`${seen}+${delay}ms${signal === 'SIGKILL' ? '' : ` (${signal})`}`)
  }
  const afterKills = await channelsOf(rpc, payer, fromBlock)
  console.log(`[SIGKILL] seed ${seed}, killed after (calls+delay): ${kills.join(', ')}`)
  report('after 10 kills', Number.NaN, afterKills, rpc.price)

  const normal = await run(rpc, 4, { calls: 5 })
  expect(normal).toMatchObject({ ok: 5, failed: 0 })
  const channels = await channelsOf(rpc, payer, fromBlock)
  report('after the normal run', normal.ok, channels, rpc.price)
  // The normal run reuses a channel the killed runs opened.
  console.log(
    `[SIGKILL] ChannelOpened: ${afterKills.length} after the kills, ${channels.length} after the normal run`,
  )
  expect(channels.length).toBe(afterKills.length)
  // The crash bound, on the counterparty's figures: the highest voucher held is at most
  // `writeAhead` prices above what the server charged (and never below it).
  for (const { highestVoucher, spent, units } of channels) {
    expect(spent).toBe(BigInt(units) * rpc.price)
    expect(highestVoucher).toBeGreaterThanOrEqual(spent)
    expect(highestVoucher - spent).toBeLessThanOrEqual(writeAhead * rpc.price)
  }
  const settled = await settleAll(rpc, channels)
  console.log(`[SIGKILL] settled on chain: ${settled.join(', ')}`)
  expect(settled).toEqual(channels.map(({ highestVoucher }) => highestVoucher))

  // No lease is left: the normal run ended its own, and took over the dead holders'.
  const store = fileChannelStore(join(dir, 'channels.db'))
  try {
    const records = await store.list()
    console.log(
      `[SIGKILL] store: ${records
        .map(
          ({ entry, ledger }) =>
            `${entry.channelId.slice(0, 10)}… mark ${ledger?.mark} signed ${ledger?.signed} spent ${ledger?.spent} lease ${ledger?.lease ? `pid ${ledger.lease.pid} live ${ledger.lease.live}` : 'none'}`,
        )
        .join('; ')}`,
    )
    expect(records.length).toBeGreaterThan(0)
    expect(
      records.map(({ entry, ledger }) => ({ channelId: entry.channelId, lease: ledger?.lease })),
    ).toEqual(records.map(({ entry }) => ({ channelId: entry.channelId, lease: undefined })))
  } finally {
    await store.close()
  }
}, 180_000)

test('50 concurrent calls in one process open one channel; then each paid call is one HTTP request', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const account = helpers.accountOf(6)
  const fromBlock = await helpers.blockNumber()
  const store = fileChannelStore(join(dir, 'channels.db'))
  const provider = session({ account, client: helpers.chainClient(), store })
  const client = helpers.paidClient(rpc.url, { provider })
  const balance = (i: number) => client.getBalance({ address: numberToHex(i, { size: 20 }) })
  try {
    await Promise.all(Array.from({ length: 50 }, (_, i) => balance(i + 1)))
    const cold = { ...rpc.counters, payments: { ...rpc.counters.payments } }
    const opened = await helpers.channelEvents('ChannelOpened', account.address, fromBlock)
    console.log(`[50 at once] cold: ${JSON.stringify(cold)}, channels opened ${opened.length}`)
    expect(opened).toHaveLength(1)

    rpc.resetCounters()
    await Promise.all(Array.from({ length: 50 }, (_, i) => balance(100 + i)))
    const concurrent = rpc.counters.requests
    rpc.resetCounters()
    for (let i = 0; i < 10; i++) await balance(200 + i)
    const sequential = rpc.counters.requests
    console.log(
      `[50 at once] steady state: 50 concurrent calls → ${concurrent} requests, 10 sequential → ${sequential} requests`,
    )
    expect({ concurrent, sequential }).toEqual({ concurrent: 50, sequential: 10 })
    await provider.release()
    await expectExact('50 at once, then 60', rpc, account.address, fromBlock, 110)
  } finally {
    await provider.release().catch(() => {})
    await store.close()
  }
}, 90_000)
