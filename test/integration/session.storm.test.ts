import { numberToHex } from 'viem'
import { expect, test } from 'vitest'
import { session } from '../../src/index.js'
import { useLocalnet } from '../support/localnet.js'
import { startProxy } from '../support/proxy.js'
import { sessionHelpers } from '../support/sessions.js'
import { faultStorm, runCalls } from '../support/storm.js'

/**
 * A fault storm: 1000 paid session calls, 50 at a time, through a proxy that hits about one paid
 * request in ten with a fault (the connection reset before the server sees it, or after it
 * answered; a 502 after it accepted; a 410; a stale 402; an answer slower than `paymentTimeout`).
 * Every call ends, paid or with a typed error. The payee holds vouchers for what it served plus
 * credit that failed calls left unused (printed: the exposure to a payee that settles its highest
 * voucher alone), and the close settles on chain exactly what it served.
 */
const localnet = useLocalnet()
const { accountOf, chainClient, paidClient, channelEvents, blockNumber } = sessionHelpers(localnet)

/**
 * Long enough for a call's payment under the load of other test files on 2 cores; a `slow` fault
 * answers after it.
 */
const paymentTimeout = 8_000

test('1000 calls, 50 at a time, ~10% faults: every call ends typed; the close settles exactly what the payee served', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const account = accountOf(8)
  const from = await blockNumber()
  const storm = faultStorm({
    faults: ['dropBefore', 'dropAfter', 'badGateway', 'gone', 'stale', 'slow'],
    slowerThan: paymentTimeout,
  })
  const proxy = await startProxy(rpc.url, storm.hook)
  try {
    const provider = session({ account, client: chainClient() })
    const client = paidClient(proxy.url, { provider, paymentTimeout, retryCount: 0 })
    const { ok, failed, failures } = await runCalls(1000, 50, (index) =>
      client.getBalance({ address: numberToHex(index, { size: 20 }) }),
    )
    console.log(
      `[storm] seed ${storm.seed}: ${ok} paid, failures ${JSON.stringify(failures)}, faults ${JSON.stringify(storm.dealt)}`,
    )
    expect(Object.keys(failures).filter((name) => name.startsWith('untyped'))).toEqual([])
    expect(ok + failed).toBe(1000)
    // Faults hit one paid request in ten; a call fails for its own fault, or one it waited on.
    expect(ok).toBeGreaterThan(500)

    // What the payee holds, on its own books, before the close.
    const opened = await channelEvents('ChannelOpened', account.address, from)
    const books = await Promise.all(
      opened.map(async (log) => {
        const channelId = (log.args as { channelId: `0x${string}` }).channelId
        return { channelId, ...(await rpc.channel(channelId)) }
      }),
    )
    let held = 0n
    let served = 0n
    for (const channel of books) {
      // The server's own books agree: what it spent is its price times the calls it served.
      expect(channel.spent).toBe(BigInt(channel.units ?? 0) * rpc.price)
      expect(channel.highestVoucher ?? 0n).toBeGreaterThanOrEqual(channel.spent ?? 0n)
      held += channel.highestVoucher ?? 0n
      served += channel.spent ?? 0n
    }
    console.log(
      `[storm] ${opened.length} channel(s): the payee holds ${held} for ${served} served (${(held - served) / rpc.price} prices over, ${failed} calls failed)`,
    )
    // Every call the payer saw succeed was served. Above what was served, the payee holds credit
    // from vouchers signed while others were in flight (at most 100 per channel) that a failed
    // call left unused, and the calls whose outcome was lost, which the payer counts as paid.
    expect(served).toBeGreaterThanOrEqual(BigInt(ok) * rpc.price)
    expect(held - served).toBeLessThanOrEqual(BigInt(failed + 100 * opened.length) * rpc.price)

    // Then calm: the first call's receipt tells the payer what the server served and holds, and
    // the calls after it are served from the credit, without a voucher above it, until it is used
    // up: the server then holds exactly what it served.
    storm.calm()
    const call = () => client.getBalance({ address: account.address })
    const booksOf = async () =>
      Promise.all(
        (await channelEvents('ChannelOpened', account.address, from)).map(async (log) => {
          const channelId = (log.args as { channelId: `0x${string}` }).channelId
          return { channelId, ...(await rpc.channel(channelId)) }
        }),
      )
    await call()
    const before = await booksOf()
    const live = before.find(
      ({ channelId, spent }) =>
        spent !== (books.find((book) => book.channelId === channelId)?.spent ?? 0n),
    )!
    const credit = (live.highestVoucher ?? 0n) - (live.spent ?? 0n)
    const calls = Number(credit / rpc.price) + 1
    for (let index = 0; index < calls; index++) await call()
    const after = (await booksOf()).find(({ channelId }) => channelId === live.channelId)!
    console.log(
      `[storm] calm: ${credit / rpc.price} prices of credit on the channel in use, used up by the next ${calls - 1} calls`,
    )
    expect(after.spent).toBe((live.spent ?? 0n) + BigInt(calls) * rpc.price)
    expect(after.highestVoucher).toBe(after.spent)
    expect(after.highestVoucher).toBe((live.highestVoucher ?? 0n) + rpc.price)
    books.splice(0, books.length, ...(await booksOf()))

    // The close settles on chain exactly what the server served on each channel, and refunds
    // the rest.
    const closed = await provider.close()
    expect(closed.map(({ channelId, settled }) => ({ channelId, settled })).sort(byId)).toEqual(
      books
        .filter(({ spent }) => spent !== undefined)
        .map(({ channelId, spent }) => ({ channelId, settled: spent }))
        .sort(byId),
    )
  } finally {
    await proxy.stop()
  }
}, 240_000)

const byId = (a: { channelId: string }, b: { channelId: string }) =>
  a.channelId.localeCompare(b.channelId)
