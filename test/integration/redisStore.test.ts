/**
 * `redisChannelStore` on a real redis-server: the pool contract every store keeps, leases with a
 * TTL and a fencing token, the written-ahead mark and the fleet budget in one script, prefixes
 * that never meet, corrupt records refused untouched, a Redis that stops, freezes or restarts,
 * and a password that never shows.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis as IoRedis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
import { ChannelStoreError } from '../../src/index.js'
import { type RedisChannelStore, redisChannelStore } from '../../src/node/index.js'
import { keysOf } from '../../src/node/redisStore/keys.js'
import { scripts } from '../../src/node/redisStore/scripts.js'
import type { ChannelLease } from '../../src/stores/ChannelStore.js'
import { type Redis, startRedis } from '../../src/testing/index.js'
import { entry, key, origin, poolContract, second } from '../support/poolContract.js'
import { redisAvailable } from '../support/redis.js'
import { rejectionOf } from '../support/rejection.js'
import { until } from '../support/until.js'

let redis: Redis
let client: IoRedis
const opened: RedisChannelStore[] = []
let prefixes = 0

/** A store on the test's Redis under a prefix of its own (or `prefix`), closed after the file. */
function store(options: Partial<Parameters<typeof redisChannelStore>[0]> = {}) {
  const made = redisChannelStore({
    redis: redis.url,
    prefix: `test-${++prefixes}`,
    ...options,
  })
  opened.push(made)
  return made
}

const tally =
  (signed = 0n, spent = 0n) =>
  () => ({ signed, spent })

describe.runIf(redisAvailable('redisStore.test.ts'))('redisChannelStore', () => {
  beforeAll(async () => {
    redis = await startRedis()
    client = new IoRedis(redis.url)
  })
  afterAll(async () => {
    for (const made of opened) await made.close().catch(() => {})
    client?.disconnect()
    await redis?.stop()
  })

  describe('pool contract (two processes sharing one prefix)', () => {
    poolContract(() => {
      const prefix = `contract-${++prefixes}`
      return [store({ prefix }), store({ prefix })]
    })
  })

  test('the mark and ledger are hash fields under one hash tag; amounts above 2^53 stay exact', async () => {
    const made = store({ prefix: 'exact' })
    await made.pool.put(entry, { origin })
    const [record] = await made.pool.free(origin, key)
    const lease = (await made.pool.claim(record as never, {
      origin,
      tally: tally(entry.cumulativeAmount + 1n, 7n),
    })) as ChannelLease
    expect(await lease.raise(entry.cumulativeAmount + 10n)).toBe(entry.cumulativeAmount + 10n)
    // Never lowered.
    expect(await lease.raise(entry.cumulativeAmount + 2n)).toBe(entry.cumulativeAmount + 10n)
    const id = entry.channelId.toLowerCase()
    const stored = await client.hgetall(`{exact}:channel:${id}`)
    expect(stored).toMatchObject({
      v: '1',
      origin,
      key,
      mark: String(entry.cumulativeAmount + 10n),
      signed: String(entry.cumulativeAmount + 1n),
      spent: '7',
      fence: expect.stringMatching(/^\d+$/),
    })
    expect(JSON.parse(stored.holder as string)).toMatchObject({ pid: process.pid })
    expect((await client.keys('*exact*')).sort()).toEqual(
      [
        `{exact}:channel:${id}`,
        '{exact}:channels',
        '{exact}:order',
        `{exact}:scope:${origin} ${key}`,
        // Only what leases wrote ahead counts toward the fleet's total: the stored channel's mark did not.
        '{exact}:committed',
      ].sort(),
    )
    expect(await made.committed()).toBe(10n)
    await lease.release()
    // Given back: the mark beyond what was signed.
    expect(await made.committed()).toBe(1n)
    expect(await client.hget(`{exact}:channel:${id}`, 'mark')).toBe(
      String(entry.cumulativeAmount + 1n),
    )
  })

  test('a lease that ran out unrenewed is taken over; its holder is `lost`, and every write of it is refused by the fence', async () => {
    const prefix = `fence-${++prefixes}`
    const [first, other] = [store({ prefix, leaseTtl: 300 }), store({ prefix, leaseTtl: 300 })]
    await first.pool.put(entry, { origin })
    const [record] = await first.pool.free(origin, key)
    // The first holder stalls (its renewals never run), as a process paused by a debugger would.
    vi.useFakeTimers({ toFake: ['setInterval'] })
    let stale: ChannelLease
    try {
      stale = (await first.pool.claim(record as never, {
        origin,
        tally: tally(0n, 0n),
      })) as ChannelLease
    } finally {
      vi.useRealTimers()
    }
    await stale.raise(entry.cumulativeAmount + 5n)
    expect(await other.pool.free(origin, key)).toEqual([])
    await until(async () => (await other.pool.free(origin, key)).length === 1)
    const [expired] = await other.pool.free(origin, key)
    const taken = (await other.pool.claim(expired as never, {
      origin,
      tally: tally(entry.cumulativeAmount + 5n, 1n),
    })) as ChannelLease
    expect(taken.record.ledger?.mark).toBe(entry.cumulativeAmount + 5n)
    expect(stale.lost).toBe(true)
    expect(
      (await rejectionOf(stale.raise(entry.cumulativeAmount + 50n))) as ChannelStoreError,
    ).toMatchObject({
      reason: 'leaseLost',
    })
    await stale.update({ deposit: 1n }).then(
      () => expect.unreachable(),
      (error) => expect(error).toMatchObject({ reason: 'leaseLost' }),
    )
    // Ended without writing: the new holder's ledger stays.
    await stale.release()
    await stale.remove()
    const id = entry.channelId.toLowerCase()
    expect(await client.hmget(`{${prefix}}:channel:${id}`, 'mark', 'fence', 'entry')).toEqual([
      String(entry.cumulativeAmount + 5n),
      expect.not.stringMatching(new RegExp(`^${stale.record.ledger?.lease?.id ?? 'none'}$`)),
      expect.stringContaining('"deposit":"50000000"'),
    ])
    await taken.release()
  })

  test('the fence, not the clock: a raise with a stale fencing token or on an expired lease changes nothing', async () => {
    const prefix = `script-${++prefixes}`
    const made = store({ prefix, leaseTtl: 60_000 })
    const lease = (await made.pool.add(second, {
      origin,
      tally: tally(),
      openingUntil: 9,
    })) as ChannelLease
    const id = second.channelId.toLowerCase()
    const channelKey = `{${prefix}}:channel:${id}`
    const committed = `{${prefix}}:committed`
    const before = await client.hgetall(channelKey)
    // A holder with an older token (one claim behind) cannot write the mark.
    const raise = (fence: string) =>
      client.eval(
        scripts.raise,
        2,
        channelKey,
        committed,
        fence,
        '999',
        '0',
        '0',
        '1000',
        '999',
        '',
      )
    expect(await raise('0')).toEqual(['lost'])
    // The current token on a lease whose TTL passed cannot either.
    await client.hset(channelKey, 'expires', '1')
    expect(await raise('1')).toEqual(['lost'])
    expect(await client.hgetall(channelKey)).toEqual({ ...before, expires: '1' })
    await lease.remove()
    expect(await client.exists(channelKey)).toBe(0)
  })

  test('a channel released between free() and claim(): the claim starts from the ledger as released, not as listed', async () => {
    const prefix = `stale-${++prefixes}`
    const [first, other] = [store({ prefix, leaseTtl: 300 }), store({ prefix })]
    const lease = (await first.pool.add(
      { ...second, cumulativeAmount: 100n },
      {
        origin,
        tally: tally(30n, 30n),
        openingUntil: 9,
      },
    )) as ChannelLease
    await lease.update({ opened: true })
    // Listed while its lease runs out (the holder stalls), released before the claim.
    await client.hset(`{${prefix}}:channel:${second.channelId.toLowerCase()}`, 'expires', '1')
    const [listed] = await other.pool.free(origin, key)
    expect(listed?.ledger?.mark).toBe(100n)
    await lease.release()
    const claimed = (await other.pool.claim(listed as never, {
      origin,
      tally: tally(30n, 30n),
    })) as ChannelLease
    expect(claimed.record.ledger).toMatchObject({ mark: 30n, signed: 30n })
    expect(await other.committed()).toBe(30n)
    await claimed.release()
  })

  test('fences never repeat: a channel deleted and stored again leaves its old holder nothing to write', async () => {
    const prefix = `fences-${++prefixes}`
    const made = store({ prefix })
    const old = (await made.pool.add(
      { ...second, cumulativeAmount: 5n },
      { origin, tally: tally(), openingUntil: 9 },
    )) as ChannelLease
    await made.forOrigin(origin).delete(key)
    await made.pool.put({ ...second, cumulativeAmount: 5n }, { origin })
    const [again] = await made.pool.free(origin, key)
    const fresh = (await made.pool.claim(again as never, {
      origin,
      tally: tally(5n, 5n),
    })) as ChannelLease
    expect(await rejectionOf(old.raise(500n))).toMatchObject({ reason: 'leaseLost' })
    expect(await fresh.raise(9n)).toBe(9n)
    await fresh.release()
  })

  test("mppx's set never lowers the mark below a voucher signed, and what it adds is not given back to the budget", async () => {
    const prefix = `set-${++prefixes}`
    const made = store({ prefix, budget: 1_000n })
    const lease = (await made.pool.add(
      { ...second, cumulativeAmount: 10n },
      { origin, tally: tally(80n, 80n), openingUntil: 9 },
    )) as ChannelLease
    await lease.update({ opened: true })
    await lease.raise(200n)
    await made.forOrigin(origin).set({ ...second, cumulativeAmount: 10n })
    expect((await made.forOrigin(origin).get(key))?.cumulativeAmount).toBe(200n)
    expect(lease.lost).toBe(false)
    expect(await rejectionOf(lease.raise(300n))).toMatchObject({ reason: 'leaseLost' })
    // A tool writing above the mark: kept, never lowered by the next release, never credited.
    await made.forOrigin(origin).set({ ...second, cumulativeAmount: 700n })
    const [record] = await made.pool.free(origin, key)
    const next = (await made.pool.claim(record as never, {
      origin,
      tally: tally(100n, 100n),
    })) as ChannelLease
    const before = await made.committed()
    await next.release()
    expect((await made.forOrigin(origin).get(key))?.cumulativeAmount).toBe(700n)
    expect(await made.committed()).toBe(before)
  })

  test('prefixes never meet, odd characters included', async () => {
    const names = ['fleet', 'fleet}:x', 'fleet:', '{fleet}', 'flëet %7D', 'fleet%7D:x']
    const stores = names.map((prefix) => store({ prefix }))
    for (const [at, made] of stores.entries())
      await made.pool.put(
        { ...entry, channelId: `0x${String(at + 1).repeat(64)}` as never },
        { origin },
      )
    for (const [at, made] of stores.entries()) {
      const listed = await made.list()
      expect(listed.map((record) => record.entry.channelId)).toEqual([
        `0x${String(at + 1).repeat(64)}`,
      ])
    }
    for (const [at, prefix] of names.entries()) {
      // The hash tag is the whole escaped prefix: its first `}` is the one that closes it.
      const { all } = keysOf(prefix)
      expect(all.indexOf('}'), prefix).toBe(all.length - '}:channels'.length)
      expect(await client.zrange(all, 0, -1)).toEqual([`0x${String(at + 1).repeat(64)}`])
    }
    expect(() => redisChannelStore({ redis: redis.url, prefix: '' })).toThrow(ChannelStoreError)
  })

  test('records in another layout or written by hand: corrupt, naming the channel, and left as they are', async () => {
    const prefix = `corrupt-${++prefixes}`
    const made = store({ prefix })
    const id = entry.channelId.toLowerCase()
    const scope = `{${prefix}}:scope:${origin} ${key}`
    await client.zadd(scope, 1, id)
    for (const [name, write] of [
      ['an older layout', () => client.hset(`{${prefix}}:channel:${id}`, 'v', '0', 'mark', '5')],
      [
        'a bad amount',
        () =>
          client.hset(`{${prefix}}:channel:${id}`, {
            v: '1',
            origin,
            key,
            entry: '{}',
            mark: '-5',
            fence: '0',
            expires: '0',
          }),
      ],
      ['a string', () => client.set(`{${prefix}}:channel:${id}`, 'hand-written')],
    ] as const) {
      await client.del(`{${prefix}}:channel:${id}`)
      await write()
      const dump = await client.dump(`{${prefix}}:channel:${id}`)
      const error = await rejectionOf(made.pool.free(origin, key))
      expect(error, name).toBeInstanceOf(ChannelStoreError)
      expect((error as ChannelStoreError).reason, name).toBe('corrupt')
      expect(await client.dump(`{${prefix}}:channel:${id}`), name).toEqual(dump)
    }
    const [record] = [{ origin, key, entry, ledger: undefined }]
    expect(
      (await rejectionOf(made.pool.claim(record, { origin, tally: tally() }))) as ChannelStoreError,
    ).toMatchObject({ reason: 'corrupt' })
  })

  test('fleet budget: marks never pass it across processes; the last room is granted in part; a refusal is typed', async () => {
    const prefix = `budget-${++prefixes}`
    const [first, other] = [store({ prefix, budget: 100n }), store({ prefix, budget: 100n })]
    const a = (await first.pool.add(
      { ...entry, cumulativeAmount: 10n },
      { origin, tally: tally(10n), openingUntil: 9 },
    )) as ChannelLease
    const b = (await other.pool.add(
      { ...second, cumulativeAmount: 10n },
      { origin, tally: tally(10n), openingUntil: 9 },
    )) as ChannelLease
    expect(await first.committed()).toBe(20n)
    expect(await a.raise(60n)).toBe(60n)
    // 30 of the 40 asked fit: granted, since 25 is needed.
    expect(await b.raise(50n, 25n)).toBe(40n)
    expect(await other.committed()).toBe(100n)
    const refused = await rejectionOf(b.raise(80n, 41n))
    expect(refused).toMatchObject({ reason: 'budget', left: 0n })
    // A new channel's open voucher is refused too, nothing stored.
    const third = { ...entry, channelId: `0x${'c4'.repeat(32)}` as const, cumulativeAmount: 5n }
    expect(
      await rejectionOf(first.pool.add(third, { origin, tally: tally(), openingUntil: 9 })),
    ).toMatchObject({ reason: 'budget' })
    expect(await first.list()).toHaveLength(2)
    // Releasing gives back what was written ahead and not signed: room for others.
    await a.release()
    expect(await first.committed()).toBe(50n)
    expect(await b.raise(80n, 41n)).toBe(80n)
    await b.release()
  })

  test('a password in the URL never shows: not in errors, nor in the location', async () => {
    const secured = await startRedis({ password: 's3cret-pw' })
    try {
      const made = store({ redis: secured.url })
      expect(made.location).toBe(`redis://127.0.0.1:${secured.port}`)
      expect(await made.pool.put(entry, { origin })).toBe(true)
      expect(await made.list()).toHaveLength(1)
      const wrong = store({ redis: `redis://:wrong-pw@127.0.0.1:${secured.port}`, timeout: 2_000 })
      const error = await rejectionOf(wrong.list())
      expect(error).toMatchObject({ reason: 'unavailable' })
      const shown =
        JSON.stringify({ ...error, message: error.message, stack: error.stack }) + String(error)
      expect(shown).not.toMatch(/wrong-pw|s3cret-pw/)
      expect(error.message).toContain(`Store: redis://127.0.0.1:${secured.port}`)
    } finally {
      await secured.stop()
    }
  })

  test('Redis stopped and started again: unavailable meanwhile, nothing written; then the same channel, its ledger intact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'viem-mpp-redis-'))
    let server = await startRedis({ dir })
    try {
      const made = store({ redis: server.url, timeout: 1_000, leaseTtl: 2_000 })
      const lease = (await made.pool.add(second, {
        origin,
        tally: tally(3n, 3n),
        openingUntil: 9,
      })) as ChannelLease
      await lease.update({ opened: true })
      await lease.raise(8n)
      await server.stop()
      const down = await rejectionOf(lease.raise(20n))
      expect(down).toMatchObject({ reason: 'unavailable' })
      expect(await rejectionOf(made.pool.free(origin, key))).toMatchObject({
        reason: 'unavailable',
      })
      // Down past the TTL: the lease is lost here, so nothing more is signed within the old mark.
      await until(async () => lease.lost, { within: 5_000 })
      server = await startRedis({ dir, port: server.port })
      await until(async () => (await made.pool.free(origin, key).catch(() => [])).length === 1)
      const [record] = await made.pool.free(origin, key)
      expect(record?.entry.channelId).toBe(second.channelId)
      expect(record?.ledger).toMatchObject({ mark: 8n, signed: 3n, spent: 3n })
      const again = (await made.pool.claim(record as never, {
        origin,
        tally: tally(8n, 8n),
      })) as ChannelLease
      expect(await again.raise(20n)).toBe(20n)
      await again.release()
    } finally {
      await server.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a frozen Redis: each operation ends within the timeout as unavailable', async () => {
    const frozen = await startRedis()
    try {
      const made = store({ redis: frozen.url, timeout: 300 })
      await made.pool.put(entry, { origin })
      process.kill(frozen.pid, 'SIGSTOP')
      try {
        const started = Date.now()
        const error = await rejectionOf(made.pool.free(origin, key))
        expect(error).toMatchObject({ reason: 'unavailable' })
        expect(error.message).toContain('did not answer within 300 ms')
        expect(Date.now() - started).toBeLessThan(5_000)
      } finally {
        process.kill(frozen.pid, 'SIGCONT')
      }
    } finally {
      await frozen.stop()
    }
  })
})

test('without ioredis for a URL, or with a URL that is not Redis: a ChannelStoreError saying so', async () => {
  const made = redisChannelStore({ redis: 'https://user:pw@cache.example/0' })
  const error = await rejectionOf(made.list())
  expect(error).toBeInstanceOf(ChannelStoreError)
  expect(String(error.cause)).toContain('redis:// or rediss:// URL')
  expect(error.message).not.toContain('pw')
})
