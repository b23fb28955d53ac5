import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import {
  type ChannelStore,
  ChannelStoreError,
  closeChannel,
  listChannels,
  memoryChannelStore,
  PaymentFailedError,
  RecoveredChannelError,
  session,
  syncChannels,
} from '../../src/index.js'
import { fileChannelStore } from '../../src/node/index.js'
import { channelHelpers } from '../support/channels.js'
import { useLocalnet } from '../support/localnet.js'
import { refusingProxy, staleVoucherAnswer } from '../support/proxy.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, paidClient, chainClient, channelEvents, blockNumber, keyOf } =
  sessionHelpers(localnet)
const { threeCalls } = channelHelpers(localnet)

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'viem-mpp-channels-sync-'))
})
afterEach(() => rm(dir, { recursive: true, force: true }))

/** Deletes a SQLite database and its WAL files. */
const deleteDatabase = (path: string) =>
  Promise.all(['', '-wal', '-shm'].map((suffix) => rm(path + suffix, { force: true })))

describe('syncChannels', () => {
  test('store file deleted: sync brings the channel back, the next calls reuse it', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const path = join(dir, 'channels.db')
    const account = accountOf(0)
    const from = await blockNumber()
    const first = fileChannelStore(path)
    const paying = (store: typeof first) =>
      paidClient(rpc.url, { provider: session({ account, client: chainClient(), store }) })
    const client = paying(first)
    for (let i = 0; i < 3; i++) await client.getChainId()
    const [original] = await listChannels({ store: first })
    await first.close()
    await deleteDatabase(path)

    const store = fileChannelStore(path)
    try {
      expect(await listChannels({ store })).toEqual([])
      const synced = await syncChannels({ store, client: chainClient(), payer: account.address })
      expect(synced.updated).toEqual([])
      expect(synced.added).toEqual([
        {
          ...original,
          origin: undefined,
          // What the vouchers were is not on chain: they restart from what is settled.
          cumulativeAmount: 0n,
          exact: false,
          lease: undefined,
          settledAmount: 0n,
          // Its open carried a voucher at least, which no store recorded: not known.
          refundable: undefined,
        },
      ])
      expect(synced.channels).toEqual(synced.added)
      // Synced again: nothing more to add.
      const again = await syncChannels({ store, client: chainClient(), payer: account.address })
      expect(again.added).toEqual([])
      expect(again.channels).toEqual(synced.added)

      rpc.resetCounters()
      const next = paying(store)
      for (let i = 0; i < 3; i++) expect(await next.getChainId()).toBe(localnet.net.chain.id)
      // No new channel: the recovered one paid, from the server's signed snapshot of it (its
      // highest voucher, 3000), with 4000, 5000, 6000.
      expect(await channelEvents('ChannelOpened', account.address, from)).toHaveLength(1)
      expect(rpc.counters.payments).toMatchObject({ open: 0, voucher: 3 })
      expect(rpc.counters.forwarded).toBe(3)
      // Taken up by the endpoint: moved to its origin.
      const [taken, ...others] = await store.list()
      expect(others).toEqual([])
      expect(taken).toMatchObject({
        origin: new URL(rpc.url).origin,
        key: keyOf(rpc.payee),
        entry: { channelId: original?.channelId },
      })

      // And it closes for exactly the six calls the server accepted.
      const closed = await closeChannel({
        store,
        channelId: original?.channelId as `0x${string}`,
        url: rpc.url,
        account,
        client: chainClient(),
      })
      expect(closed).toMatchObject({ settled: 6_000n, refunded: 994_000n })
    } finally {
      await store.close()
    }
  })

  test('a server without snapshots that calls every catch-up voucher stale: 100 signed at most, that call fails unpaid, the next opens a new channel', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const account = accountOf(3)
    const from = await blockNumber()
    await paidClient(rpc.url, {
      provider: session({ account, client: chainClient() }),
    }).getChainId()
    const proxy = await refusingProxy(rpc.url, 'voucher', staleVoucherAnswer, { snapshots: false })
    const vouchers = proxy.refused
    try {
      const store = memoryChannelStore()
      const { added } = await syncChannels({ store, client: chainClient(), payer: account.address })
      const client = paidClient(proxy.url, {
        provider: session({ account, client: chainClient(), store }),
      })
      // The catch-up gives up after 100 vouchers: the call fails, its own voucher unsigned.
      const error = await client.getChainId().catch((error: unknown) => error)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error).toMatchObject({ settled: false })
      expect((error as PaymentFailedError).walk()).toBeInstanceOf(RecoveredChannelError)
      expect(vouchers).toEqual(Array.from({ length: 100 }, (_, i) => String((i + 1) * 1000)))
      // The next call pays on a new channel (whose first voucher rides in the open, which the
      // proxy lets through), without climbing again.
      expect(await client.getChainId()).toBe(localnet.net.chain.id)
      expect(vouchers).toHaveLength(100)
      const opened = await channelEvents('ChannelOpened', account.address, from)
      expect(opened).toHaveLength(2)
      // Both channels belong to the origin now, free: the recovered one records the 100 vouchers
      // the search signed (none served), so that nothing below them is ever signed on it again.
      expect(await store.list?.()).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            origin: new URL(proxy.url).origin,
            key: keyOf(rpc.payee),
            entry: expect.objectContaining({ channelId: added[0]?.channelId }),
            ledger: expect.objectContaining({ signed: 100_000n, spent: 0n, lease: undefined }),
          }),
          expect.objectContaining({
            origin: new URL(proxy.url).origin,
            key: keyOf(rpc.payee),
            entry: expect.objectContaining({ channelId: opened[1]?.args.channelId }),
          }),
        ]),
      )
      expect(await store.list?.()).toHaveLength(2)
    } finally {
      await proxy.stop()
    }
  })

  test("another payer's channels are not synced; a memory store works the same", async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const client = paidClient(rpc.url, {
      provider: session({ account: accountOf(1), client: chainClient() }),
    })
    await client.getChainId()
    const store = memoryChannelStore()
    const other = await syncChannels({ store, client: chainClient(), payer: accountOf(2).address })
    expect(other).toEqual({ added: [], updated: [], channels: [] })
    const mine = await syncChannels({ store, client: chainClient(), payer: accountOf(1).address })
    expect(mine.added).toHaveLength(1)
    expect(mine.added[0]).toMatchObject({ payer: accountOf(1).address, deposit: 1_000_000n })
  })

  test('a corrupt store: typed error, the file left as it was', async () => {
    const path = join(dir, 'channels.db')
    await writeFile(path, 'not a database, but maybe the only record of a deposit')
    const before = await readFile(path)
    const store = fileChannelStore(path)
    try {
      const error = await syncChannels({
        store,
        client: chainClient(),
        payer: accountOf(0).address,
      }).catch((error: unknown) => error)
      expect(error).toBeInstanceOf(ChannelStoreError)
      expect((error as ChannelStoreError).reason).toBe('corrupt')
      expect((error as ChannelStoreError).shortMessage).not.toContain('\n')
      const listed = await listChannels({ store }).catch((error: unknown) => error)
      expect((listed as ChannelStoreError).reason).toBe('corrupt')
      expect(await readFile(path)).toEqual(before)
    } finally {
      await store.close()
    }
  })
})

describe('syncChannels, a provider writing meanwhile', () => {
  test('a deposit the store missed is written without undoing what was signed since the store was read', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const source = memoryChannelStore()
    await threeCalls(9, rpc.url, source)
    const [stored] = (await source.list?.()) ?? []
    if (!stored) throw new Error('no channel')
    const memory = memoryChannelStore()
    const namespace = memory.forOrigin?.(rpc.url)
    // The store missed a top-up: it says 500 000 when the chain says 1 000 000.
    await namespace?.set({ ...stored.entry, deposit: 500_000n })
    // A provider signs on the channel (and writes it) right after sync has read the store.
    const store: ChannelStore = {
      ...memory,
      async list() {
        const records = (await memory.list?.()) ?? []
        await namespace?.set({ ...stored.entry, deposit: 500_000n, cumulativeAmount: 9_000n })
        return records
      },
    }
    const { updated } = await syncChannels({
      store,
      client: chainClient(),
      payer: accountOf(9).address,
    })
    expect(updated.map(({ channelId }) => channelId)).toEqual([stored.entry.channelId])
    expect(await namespace?.get(stored.key)).toMatchObject({
      deposit: 1_000_000n,
      cumulativeAmount: 9_000n,
    })
  })
})
