/**
 * `session()` on `redisChannelStore`, in one process against the localnet and mppx's session
 * server: a fleet budget shared by two providers caps what both sign, to the price; a frozen
 * Redis never holds a paid call past `paymentTimeout`; unpaid calls need no Redis at all.
 */
import { createPublicClient } from 'viem'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { mppHttp, PaymentFailedError, PaymentRefusedError, session } from '../../src/index.js'
import { redisChannelStore } from '../../src/node/index.js'
import { type Redis, startRedis } from '../../src/testing/index.js'
import { useLocalnet } from '../support/localnet.js'
import { redisAvailable } from '../support/redis.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, paidClient, chainClient, channelEvents, blockNumber } = sessionHelpers(localnet)
let redis: Redis

describe.runIf(redisAvailable('redisSession.test.ts'))('session() on redisChannelStore', () => {
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(() => redis?.stop())

  test('a fleet budget of 25 prices across two providers: exactly 25 calls are paid, the next refused as fleetBudget, nothing signed above', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const payer = accountOf(0).address
    const from = await blockNumber()
    const budget = 25n * rpc.price
    const stores = [0, 1].map(() =>
      redisChannelStore({ redis: redis.url, prefix: 'budget', budget }),
    )
    const clients = stores.map((store) =>
      paidClient(rpc.url, {
        provider: session({ account: accountOf(0), client: chainClient(), store }),
      }),
    )
    try {
      const paid = [0, 0]
      const refusals: unknown[] = []
      // Each pays until the fleet's budget refuses it.
      await Promise.all(
        clients.map(async (client, index) => {
          for (;;) {
            const error = await client.getChainId().then(
              () => undefined,
              (error: unknown) => error,
            )
            if (error) return refusals.push(error)
            paid[index]! += 1
          }
        }),
      )
      console.log(`[fleet budget] paid ${paid.join(' + ')}`)
      expect(paid[0]! + paid[1]!).toBe(25)
      expect(refusals).toHaveLength(2)
      for (const refusal of refusals) {
        expect(refusal).toBeInstanceOf(PaymentRefusedError)
        expect(refusal).toMatchObject({ reason: 'fleetBudget', amount: rpc.price })
      }
      // The counterparty's truth: two channels, holding exactly the 25 calls served.
      const opened = await channelEvents('ChannelOpened', payer, from)
      expect(opened).toHaveLength(2)
      const held = await Promise.all(
        opened.map(
          async (log) =>
            (await rpc.channel((log.args as { channelId: `0x${string}` }).channelId))
              ?.highestVoucher ?? 0n,
        ),
      )
      expect(held.reduce((sum, voucher) => sum + voucher, 0n)).toBe(budget)
      expect(await stores[0]!.committed()).toBe(budget)
    } finally {
      for (const store of stores) await store.close()
    }
    // Released exactly: what was committed is what was signed.
    const check = redisChannelStore({ redis: redis.url, prefix: 'budget' })
    try {
      expect(await check.committed()).toBe(budget)
    } finally {
      await check.close()
    }
  })

  test('a frozen Redis: a paid call fails within paymentTimeout, typed; unpaid calls go on', async () => {
    const frozen = await startRedis()
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const store = redisChannelStore({ redis: frozen.url, prefix: 'frozen', timeout: 60_000 })
    const provider = session({ account: accountOf(1), client: chainClient(), store })
    const paid = paidClient(rpc.url, { provider, paymentTimeout: 1_500 })
    const unpaid = createPublicClient({
      chain: localnet.net.chain,
      transport: mppHttp(localnet.net.rpcUrl, { provider }),
    })
    try {
      await paid.getChainId()
      process.kill(frozen.pid, 'SIGSTOP')
      try {
        // The first call's channel is leased, its mark covers the next calls: paid without Redis.
        await paid.getChainId()
        expect(await unpaid.getChainId()).toBe(localnet.net.chain.id)
        // Beyond the mark, the write waits on Redis: the payment's deadline ends it.
        const errors: unknown[] = []
        for (let i = 0; i < 12 && errors.length === 0; i++)
          await paid.getChainId().catch((error: unknown) => errors.push(error))
        const [error] = errors as Error[]
        expect(error).toBeInstanceOf(PaymentFailedError)
        expect(error?.message).toMatch(/paymentTimeout|1500 ms/)
      } finally {
        process.kill(frozen.pid, 'SIGCONT')
      }
      // Nothing was signed above the mark Redis holds.
      const [record] = await store.list()
      const held = await rpc.channel(record?.entry.channelId as `0x${string}`)
      expect(held?.highestVoucher).toBeLessThanOrEqual(record?.ledger?.mark as bigint)
    } finally {
      await store.close().catch(() => {})
      await frozen.stop()
    }
  })
})
