/**
 * A fleet on one Redis: payer processes on several "machines" (separate `TEMPO_HOME`s, sharing
 * only Redis) pay one mppx session server with `redisChannelStore`. What is asserted is the
 * counterparty's truth (what the server holds, what the chain settles) and what Redis records:
 * every call served, no more channels than processes, vouchers that add up to exactly what was
 * served, free channels reused, the crash bound after SIGKILLs, and nothing signed above the mark
 * while Redis is away.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { redisChannelStore } from '../../src/node/index.js'
import type { ChannelRecord } from '../../src/stores/ChannelStore.js'
import { type Redis, startRedis } from '../../src/testing/index.js'
import { useLocalnet } from '../support/localnet.js'
import { payerRuns, type RunResult } from '../support/payerRuns.js'
import { seededRandom } from '../support/random.js'
import { redisAvailable } from '../support/redis.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const runs = payerRuns(localnet)
const helpers = sessionHelpers(localnet)

/** The default `writeAhead` of `session()`. */
const writeAhead = 10n

let redis: Redis
let dir: string
/** Three machines: each its own TEMPO_HOME (keys, file store), sharing only Redis. */
let machines: string[]

/** What Redis records of the store `prefix`'s channels. */
async function recorded(prefix: string) {
  const store = redisChannelStore({ redis: redis.url, prefix })
  try {
    return await store.list()
  } finally {
    await store.close()
  }
}

const show = (records: ChannelRecord[]) =>
  records
    .map(
      ({ entry, ledger }) =>
        `${entry.channelId.slice(0, 10)}… mark ${ledger?.mark} signed ${ledger?.signed} lease ${ledger?.lease ? `pid ${ledger.lease.pid}` : 'none'}`,
    )
    .join('; ')

const total = (results: RunResult[]) => results.reduce((sum, { ok }) => sum + ok, 0)

describe.runIf(redisAvailable('fleet.test.ts'))('a fleet on one Redis', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'viem-mpp-fleet-'))
    machines = ['a', 'b', 'c'].map((name) => join(dir, name))
    redis = await startRedis({ dir })
  })
  afterAll(async () => {
    await redis?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  /** A payer on `machine` with the fleet's store `prefix`. */
  const payer = (
    prefix: string,
    machine: number,
    options: { calls: number; leaseTtl?: number; timeout?: number },
  ) => ({
    calls: options.calls,
    concurrency: 4,
    ending: 'natural' as const,
    store: redis.url,
    env: {
      TEMPO_HOME: machines[machine] as string,
      VIEM_MPP_TEST_PREFIX: prefix,
      VIEM_MPP_TEST_LEASE_TTL: String(options.leaseTtl ?? 15_000),
      VIEM_MPP_TEST_REDIS_TIMEOUT: String(options.timeout ?? 5_000),
    },
  })

  test('3 machines × 4 processes × 50 calls: all served, ≤ 12 channels, the server holds exactly calls × price; later runs reuse a free channel', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const account = 0
    const payerAddress = localnet.net.accounts[account]!.address
    const fromBlock = await helpers.blockNumber()
    const results = await runs.runTogether(
      rpc,
      account,
      [0, 1, 2].flatMap((machine) =>
        Array.from({ length: 4 }, () => payer('fleet', machine, { calls: 50 })),
      ),
    )
    console.log(`[fleet 3×4×50] ${JSON.stringify(results.map(({ ok, failed }) => [ok, failed]))}`)
    expect(results.map(({ failed, errors }) => ({ failed, errors }))).toEqual(
      Array(12).fill({ failed: 0, errors: [] }),
    )
    expect(total(results)).toBe(600)
    const channels = await runs.channelsOf(rpc, payerAddress, fromBlock)
    runs.report('fleet 3×4×50', 600, channels, rpc.price)
    expect(channels.length).toBeGreaterThanOrEqual(1)
    expect(channels.length).toBeLessThanOrEqual(12)
    for (const { highestVoucher, spent, units } of channels)
      expect({ highestVoucher, spent }).toEqual({
        highestVoucher: BigInt(units) * rpc.price,
        spent: BigInt(units) * rpc.price,
      })
    expect(channels.reduce((sum, { units }) => sum + units, 0)).toBe(600)

    // Each process ended on its own: its lease released, the ledger exactly the server's voucher.
    const records = await recorded('fleet')
    console.log(`[fleet 3×4×50] Redis: ${show(records)}`)
    expect(
      records.map(({ entry, ledger }) => ({
        channelId: entry.channelId,
        mark: ledger?.mark,
        signed: ledger?.signed,
        lease: ledger?.lease,
      })),
    ).toEqual(
      expect.arrayContaining(
        channels.map(({ channelId, highestVoucher }) => ({
          channelId: expect.stringMatching(new RegExp(`^${channelId}$`, 'i')),
          mark: highestVoucher,
          signed: highestVoucher,
          lease: undefined,
        })),
      ),
    )

    // A later run on any machine takes a free channel: no new open.
    const later = await runs.run(rpc, account, payer('fleet', 2, { calls: 5 }))
    expect(later).toMatchObject({ ok: 5, failed: 0 })
    const after = await runs.channelsOf(rpc, payerAddress, fromBlock)
    expect(after.length).toBe(channels.length)
    // Another prefix is another store: it sees none of these channels, and opens its own.
    const elsewhere = await runs.run(rpc, account, payer('other-fleet', 0, { calls: 1 }))
    expect(elsewhere).toMatchObject({ ok: 1, failed: 0 })
    expect((await runs.channelsOf(rpc, payerAddress, fromBlock)).length).toBe(channels.length + 1)
    expect((await recorded('other-fleet')).length).toBe(1)
    await runs.expectExact('fleet, then 5 and 1 more', rpc, payerAddress, fromBlock, 606)
  }, 240_000)

  test('SIGKILL of random processes mid-run: the crash bound holds on each channel, others take their channels up, no live lease is left', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const account = 1
    const payerAddress = localnet.net.accounts[account]!.address
    const fromBlock = await helpers.blockNumber()
    const seed = Number(process.env.FLEET_SEED ?? Date.now() % 1_000_000)
    const random = seededRandom(seed)
    const started = await Promise.all(
      [0, 1, 2, 0].map((machine) =>
        runs.startRun(rpc, account, {
          ...payer('kills', machine, { calls: 40, leaseTtl: 3_000 }),
          progress: true,
        }),
      ),
    )
    for (const run of started) run.go()
    // Two of them die after a random number of calls.
    const killed = [0, 1, 2, 3].sort(() => random() - 0.5).slice(0, 2)
    const kills: string[] = []
    await Promise.all(
      killed.map(async (index) => {
        const run = started[index]!
        const calls = 1 + Math.floor(random() * 20)
        let seen = 0
        while (seen < calls && (await run.nextLine()).startsWith('progress ')) seen++
        run.child.kill('SIGKILL')
        await run.exited
        kills.push(`#${index} after ${seen}`)
      }),
    )
    const survivors = await Promise.all(
      started.filter((_, index) => !killed.includes(index)).map((run) => run.result()),
    )
    expect(survivors.map(({ ok, failed }) => ({ ok, failed }))).toEqual([
      { ok: 40, failed: 0 },
      { ok: 40, failed: 0 },
    ])
    const afterKills = await runs.channelsOf(rpc, payerAddress, fromBlock)
    console.log(`[fleet kills] seed ${seed}, killed ${kills.join(', ')}`)
    runs.report('after the kills', Number.NaN, afterKills, rpc.price)

    // The next runs take up the channels of the dead (free at once: their pids are gone).
    const next = await runs.runTogether(rpc, account, [
      payer('kills', 1, { calls: 10 }),
      payer('kills', 2, { calls: 10 }),
    ])
    expect(total(next)).toBe(20)
    const channels = await runs.channelsOf(rpc, payerAddress, fromBlock)
    runs.report('after the next runs', Number.NaN, channels, rpc.price)
    expect(channels.length).toBe(afterKills.length)
    expect(channels.length).toBeLessThanOrEqual(4)
    for (const { highestVoucher, spent, units } of channels) {
      expect(spent).toBe(BigInt(units) * rpc.price)
      expect(highestVoucher).toBeGreaterThanOrEqual(spent)
      expect(highestVoucher - spent).toBeLessThanOrEqual(writeAhead * rpc.price)
    }
    const records = await recorded('kills')
    console.log(`[fleet kills] Redis: ${show(records)}`)
    // No live lease is left (a dead holder's is free to claim), and no channel's voucher held by
    // the server is above the mark Redis records for it.
    expect(records.filter(({ ledger }) => ledger?.lease?.live)).toEqual([])
    for (const { channelId, highestVoucher } of channels) {
      const record = records.find(
        ({ entry }) => entry.channelId.toLowerCase() === channelId.toLowerCase(),
      )
      expect(highestVoucher).toBeLessThanOrEqual(record?.ledger?.mark as bigint)
    }
    const settled = await runs.settleAll(rpc, channels)
    expect(settled).toEqual(channels.map(({ highestVoucher }) => highestVoucher))
  }, 240_000)

  test('Redis stopped mid-run and started again: typed errors meanwhile, no voucher above the mark, then calls resume on the same channel', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const account = 2
    const payerAddress = localnet.net.accounts[account]!.address
    const fromBlock = await helpers.blockNumber()
    const run = await runs.startRun(rpc, account, {
      ...payer('outage', 0, { calls: 0, timeout: 500 }),
      ending: 'release',
    })
    expect(await run.step(12)).toMatchObject({ ok: 12, failed: 0 })

    await redis.stop()
    const during = await run.step(30)
    console.log(`[outage] during: ${JSON.stringify(during)}`)
    redis = await startRedis({ dir, port: redis.port })
    // The mark as Redis kept it through the outage (synced to disk at each write).
    const [kept] = await recorded('outage')
    const mark = kept?.ledger?.mark as bigint
    // What the written mark covers is paid; nothing beyond it: the rest fail, typed.
    expect(during.ok).toBe(Number(mark / rpc.price) - 12)
    expect(during.ok).toBeLessThanOrEqual(Number(writeAhead))
    expect(during.kinds).toEqual({
      'PaymentFailedError/ChannelStoreError:unavailable': 30 - during.ok,
    })
    const [held] = await runs.channelsOf(rpc, payerAddress, fromBlock)
    expect(held?.highestVoucher).toBe(mark)

    const resumed = await run.step(10)
    expect(resumed, JSON.stringify(resumed)).toMatchObject({ ok: 10, failed: 0 })
    run.end()
    expect(await run.result()).toMatchObject({ failed: 0 })
    const served = 12 + during.ok + 10
    const channels = await runs.expectExact('outage', rpc, payerAddress, fromBlock, served)
    expect(channels).toHaveLength(1)
    const [after] = await recorded('outage')
    expect(after?.ledger).toMatchObject({
      mark: BigInt(served) * rpc.price,
      signed: BigInt(served) * rpc.price,
      lease: undefined,
    })
  }, 120_000)
})
