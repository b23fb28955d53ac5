/**
 * `viem-mpp channels … --store redis://…`: a fleet's channels listed, synced back from the chain
 * into an emptied Redis (the next call opens none), and closed, with the Redis password never
 * printed.
 */

import { Redis as IoRedis } from 'ioredis'
import type { Hex } from 'viem'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { session } from '../../src/index.js'
import { redisChannelStore } from '../../src/node/index.js'
import { type Redis, startRedis } from '../../src/testing/index.js'
import { linesOf, runCli } from '../support/cli.js'
import { useLocalnet } from '../support/localnet.js'
import { redisAvailable } from '../support/redis.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, paidClient, chainClient, channelEvents, blockNumber } = sessionHelpers(localnet)
const password = 'fleet-secret-pw'
const prefix = 'cli-fleet'
let redis: Redis

/** `viem-mpp channels args --store <redis> --prefix cli-fleet` as dev account `index`. */
async function channels(index: number, args: readonly string[], store = redis.url) {
  const { privateKey } = localnet.net.accounts[index] ?? {}
  const run = await runCli(
    ['channels', ...args, '--store', store, '--prefix', prefix, '--rpc-url', localnet.net.rpcUrl],
    { TEMPO_PRIVATE_KEY: privateKey },
  )
  expect(`${run.stdout}${run.stderr}`).not.toContain(privateKey?.slice(2))
  expect(`${run.stdout}${run.stderr}`).not.toContain(password)
  return run
}

/** `calls` paid calls from dev account `index`, on the fleet's store. */
async function pay(index: number, url: string, calls: number) {
  const store = redisChannelStore({ redis: redis.url, prefix })
  try {
    const provider = session({ account: accountOf(index), client: chainClient(), store })
    const client = paidClient(url, { provider })
    for (let i = 0; i < calls; i++) await client.getChainId()
  } finally {
    await store.close()
  }
}

describe.runIf(redisAvailable('cli.redis.test.ts'))('channels --store redis://', () => {
  beforeAll(async () => {
    redis = await startRedis({ password })
  })
  afterAll(() => redis?.stop())

  test('list, sync into an emptied Redis (the next call opens none), close', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const payer = accountOf(0).address
    const from = await blockNumber()
    await pay(0, rpc.url, 3)
    const [opened] = await channelEvents('ChannelOpened', payer, from)
    if (!opened) throw new Error('no channel opened')
    const { channelId } = opened.args as { channelId: Hex }

    const listed = await channels(0, ['list', '--json'])
    expect(listed).toMatchObject({ code: 0, stderr: '' })
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({
        channelId,
        origin: new URL(rpc.url).origin,
        state: 'open',
        deposit: '1000000',
        cumulativeAmount: String(3n * rpc.price),
      }),
    ])

    // Redis lost everything: the chain's logs bring the channel back into the pool.
    const client = new IoRedis(redis.url)
    try {
      await client.flushall()
    } finally {
      client.disconnect()
    }
    expect(JSON.parse((await channels(0, ['list', '--json'])).stdout)).toEqual([])
    const synced = await channels(0, ['sync', '--json'])
    expect(synced.code).toBe(0)
    expect(
      JSON.parse(synced.stdout).added.map(({ channelId }: { channelId: Hex }) => channelId),
    ).toEqual([channelId])
    const next = await blockNumber()
    await pay(0, rpc.url, 1)
    expect(await channelEvents('ChannelOpened', payer, next)).toEqual([])
    expect(await rpc.channel(channelId)).toMatchObject({ highestVoucher: 4n * rpc.price })

    const closed = await channels(0, ['close', channelId, '--url', rpc.url, '--json'])
    expect(closed.code, closed.stderr).toBe(0)
    expect(JSON.parse(closed.stdout)).toMatchObject({ settled: String(4n * rpc.price) })
    expect((await channels(0, ['list'])).stdout).toBe('No channels.\n')
  }, 120_000)

  test('a Redis that does not answer, or refuses the password: one line naming it, never the password', async () => {
    const wrong = `redis://:${password}@127.0.0.1:${redis.port + 1}`
    const down = await channels(0, ['list'], wrong)
    expect(down.code).toBe(1)
    expect(linesOf(down.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^viem-mpp: The channel database cannot be used \\(redis://127\\.0\\.0\\.1:${redis.port + 1}\\)`,
        ),
      ),
      `  Store: redis://127.0.0.1:${redis.port + 1}`,
      '  Nothing was signed above what the store recorded; payments resume on the same channels once it answers again.',
    ])
    const refused = await channels(0, ['list'], `redis://:not-${password}@127.0.0.1:${redis.port}`)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(`redis://127.0.0.1:${redis.port}`)
    const prefixed = await runCli(['channels', 'list', '--prefix', 'x'])
    expect(prefixed.code).toBe(2)
    expect(linesOf(prefixed.stderr)[0]).toContain('--prefix names the channels of a redis:// store')
  })
})
