/**
 * `redisChannelStore` on a real Redis Cluster: three redis-servers in cluster mode sharing the
 * 16384 slots, reached through an ioredis `Cluster` client. Every key of a store shares its hash
 * tag, so each script runs on the node that owns the tag's slot; two prefixes land on different
 * nodes and still never meet.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis as IoRedis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { redisChannelStore } from '../../src/node/index.js'
import { keysOf } from '../../src/node/redisStore/keys.js'
import type { ChannelLease } from '../../src/stores/ChannelStore.js'
import { type Redis, startRedis } from '../../src/testing/index.js'
import { key, origin, poolContract, second } from '../support/poolContract.js'
import { redisAvailable } from '../support/redis.js'
import { until } from '../support/until.js'

let nodes: Redis[] = []
let cluster: Cluster
let dir: string

describe.runIf(redisAvailable('redisCluster.test.ts'))('redisChannelStore on Redis Cluster', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'viem-mpp-cluster-'))
    nodes = await Promise.all(
      [0, 1, 2].map((index) =>
        startRedis({
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, `nodes-${index}.conf`),
          ],
        }),
      ),
    )
    const admins = nodes.map((node) => new IoRedis(node.url))
    try {
      // Three masters, a third of the slots each, introduced to each other.
      const third = Math.floor(16384 / 3)
      await Promise.all(
        admins.map((admin, index) =>
          admin.call(
            'CLUSTER',
            'ADDSLOTSRANGE',
            String(index * third),
            String(index === 2 ? 16383 : (index + 1) * third - 1),
          ),
        ),
      )
      for (const node of nodes.slice(1))
        await admins[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(node.port))
      await until(
        async () =>
          (await Promise.all(admins.map((admin) => admin.call('CLUSTER', 'INFO')))).every((info) =>
            String(info).includes('cluster_state:ok'),
          ),
        { within: 20_000, every: 50, message: 'The cluster did not form in time.' },
      )
    } finally {
      for (const admin of admins) admin.disconnect()
    }
    cluster = new Cluster(nodes.map(({ port }) => ({ host: '127.0.0.1', port })))
  })
  afterAll(async () => {
    cluster?.disconnect()
    await Promise.all(nodes.map((node) => node.stop()))
    rmSync(dir, { recursive: true, force: true })
  })

  describe('pool contract', () => {
    let prefixes = 0
    poolContract(() => {
      const prefix = `cluster-contract-${++prefixes}`
      return [
        redisChannelStore({ redis: cluster, prefix }),
        redisChannelStore({ redis: cluster, prefix }),
      ]
    })
  })

  test('stores on different nodes: each works in its own slot, and closing them leaves the client open', async () => {
    const slots = await Promise.all(
      ['fleet-a', 'fleet-b', 'fleet-c', 'fleet-d'].map(async (prefix) => ({
        prefix,
        slot: Number(await cluster.call('CLUSTER', 'KEYSLOT', keysOf(prefix).all)),
      })),
    )
    // At least two of the prefixes live on different nodes (a third of the slots each).
    const owners = new Set(
      slots.map(({ slot }) => Math.min(2, Math.floor(slot / Math.floor(16384 / 3)))),
    )
    expect(owners.size).toBeGreaterThan(1)
    for (const { prefix } of slots) {
      const store = redisChannelStore({ redis: cluster, prefix, budget: 100n })
      const lease = (await store.pool.add(
        { ...second, cumulativeAmount: 10n },
        { origin, tally: () => ({ signed: 12n, spent: 12n }), openingUntil: 9 },
      )) as ChannelLease
      await lease.update({ opened: true })
      expect(await lease.raise(30n)).toBe(30n)
      await lease.release()
      expect(await store.committed()).toBe(12n)
      const [record] = await store.pool.free(origin, key)
      expect(record?.ledger).toMatchObject({ mark: 12n, signed: 12n, lease: undefined })
      await store.close()
    }
    // The client is the caller's: still usable.
    expect(await cluster.call('PING')).toBe('PONG')
  })
})
