/**
 * The dApp over a WebSocket in a real Chromium: the same page, its paid RPC reached with
 * `mppWebSocket` (in-band payments, `startPaidRpc({ transport: 'ws' })`), on the localnet. Calls
 * are paid by voucher on the socket, a block subscription is paid once and its blocks never, and
 * after a reload the channel closes over a socket for the refund: asserted on the server's books
 * and the chain.
 */
import type { Page } from 'playwright-core'
import { type Address, createPublicClient, http, parseEventLogs } from 'viem'
import { Abis, Addresses } from 'viem/tempo'
import { expect } from 'vitest'
import { findChromium, withBrowser } from '../support/browser.js'
import { noPayments } from '../support/counters.js'
import { useDapp } from '../support/dapp.js'
import { balanceOf } from '../support/localnet.js'

const chromiumFound = await findChromium()
const browserTest = withBrowser(chromiumFound)
const price = 1_000n
const maxDeposit = 100_000n

const running = useDapp(chromiumFound, { price, maxDeposit, transport: 'ws' })

const byId = (page: Page, id: string) => page.locator(`[data-testid="${id}"]`)

async function reserveEvents(name: 'ChannelOpened' | 'ChannelClosed', payer: Address) {
  const plain = createPublicClient({
    chain: running.net.chain,
    transport: http(running.net.rpcUrl),
  })
  const logs = await plain.getLogs({ address: Addresses.tip20ChannelReserve, fromBlock: 0n })
  return parseEventLogs({ abi: Abis.tip20ChannelReserve, logs, eventName: name }).filter(
    (log) => (log.args as { payer: Address }).payer.toLowerCase() === payer.toLowerCase(),
  )
}

browserTest(
  'over a WebSocket: calls paid by voucher on the socket, a block subscription paid once and its blocks never; after a reload the channel closed over a socket for the refund',
  async () => {
    expect(running.dapp.rpc.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/)
    const context = await running.browser.newContext()
    const page = await context.newPage()
    const errors: string[] = []
    const sockets: string[] = []
    page.on('pageerror', (error) => errors.push(error.message))
    page.on('websocket', (socket) => sockets.push(socket.url()))
    await page.goto(running.dapp.page.url)
    await page.waitForSelector('body[data-ready="true"]')

    await byId(page, 'allow').click()
    await page.waitForSelector('[data-testid="prompt"]:not([hidden])')
    await byId(page, 'approve').click()
    await page.waitForSelector('[data-testid="key-status"][data-key^="0x"]')

    // Three paid calls: the channel opened in the first, a voucher each after it.
    for (const count of [1, 2, 3]) {
      await byId(page, 'call').click()
      await page.waitForSelector('[data-testid="call"]:not([disabled])')
      expect(await byId(page, 'message').textContent()).toBe('')
      expect(await byId(page, 'receipts').getAttribute('data-count')).toBe(String(count))
    }
    expect(await byId(page, 'result').textContent()).toMatch(/^block \d+$/)
    expect(running.dapp.rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 2 })
    // Everything went over one socket to the paid RPC: no HTTP request reached it.
    expect(sockets).toEqual([`${running.dapp.rpc.url}/`])

    // New blocks over a paid subscription: one voucher for it, none for the blocks.
    await byId(page, 'watch').click()
    await page.waitForSelector('[data-testid="watched"][data-count="3"]')
    await byId(page, 'watch').click()
    await page.waitForSelector('[data-testid="watch"]:not([disabled])')
    expect(running.dapp.rpc.counters.payments.voucher).toBe(3)
    expect(running.dapp.rpc.counters.notifications).toBeGreaterThanOrEqual(3)
    expect(await byId(page, 'watched').textContent()).toMatch(/^3 new blocks, the latest \d+$/)

    // After a reload the channel is found in localStorage and closed by closeChannel over a
    // socket of its own: the payee gets exactly the four prices, the wallet the rest.
    await page.reload()
    await page.waitForSelector('body[data-ready="true"]')
    const walletBefore = await balanceOf(running.net, running.dapp.wallet)
    await byId(page, 'close').click()
    await page.waitForSelector('[data-testid="closed"][data-refunded]')
    expect(await byId(page, 'closed').textContent()).toBe(
      'Closed: $0.004 paid, $0.096 refunded to your wallet.',
    )
    const closed = await reserveEvents('ChannelClosed', running.dapp.wallet)
    const amounts = closed.map(
      ({ args }) => args as { settledToPayee: bigint; refundedToPayer: bigint },
    )
    expect(amounts.map((args) => [args.settledToPayee, args.refundedToPayer])).toEqual([
      [4n * price, maxDeposit - 4n * price],
    ])
    expect(await balanceOf(running.net, running.dapp.wallet)).toBe(
      walletBefore + maxDeposit - 4n * price,
    )
    expect(running.dapp.rpc.counters.payments.close).toBe(1)
    expect(await reserveEvents('ChannelOpened', running.dapp.wallet)).toHaveLength(1)
    expect(errors).toEqual([])
    await context.close()
  },
)
