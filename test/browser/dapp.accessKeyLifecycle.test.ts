/**
 * The dApp's access key over its life, in Chromium: a reload before closing, forgetting a key
 * that still has an open channel, a key whose limit runs out mid-session, and what reaches the
 * console.
 */
import type { Browser, Page } from 'playwright-core'
import { getAddress, type Hex } from 'viem'
import { Account } from 'viem/tempo'
import { afterAll, beforeAll, expect } from 'vitest'
import { startDapp } from '../../examples/dapp/start.js'
import { type Localnet, startLocalnet } from '../../src/testing/index.js'
import { setRemainingLimit } from '../support/accessKeys.js'
import { findChromium, launch, withBrowser } from '../support/browser.js'
import { noPayments } from '../support/counters.js'
import { balanceOf } from '../support/localnet.js'

const chromiumFound = await findChromium()
const browserTest = withBrowser(chromiumFound)
const funding = 10_000_000n

let net: Localnet
let browser: Browser

beforeAll(async () => {
  if ('missing' in chromiumFound) return
  net = await startLocalnet()
  browser = await launch(chromiumFound.executablePath)
})

afterAll(async () => {
  await browser?.close()
  await net?.stop()
})

const byId = (page: Page, id: string) => page.locator(`[data-testid="${id}"]`)

/** Opens the dApp in a fresh context, keeping every console line and every paid request's credential. */
async function open(url: string) {
  const context = await browser.newContext()
  const page = await context.newPage()
  const console: string[] = []
  const credentials: string[] = []
  page.on('console', (message) => console.push(message.text()))
  page.on('pageerror', (error) => console.push(error.message))
  page.on('request', (request) => {
    const authorization = request.headers().authorization
    if (authorization?.startsWith('Payment ')) credentials.push(authorization.slice(8))
  })
  await page.goto(url)
  await page.waitForSelector('body[data-ready="true"]')
  return { context, page, console, credentials }
}

async function allow(page: Page) {
  await byId(page, 'allow').click()
  await page.waitForSelector('[data-testid="prompt"]:not([hidden])')
  await byId(page, 'approve').click()
  await page.waitForSelector('[data-testid="key-status"][data-key^="0x"]')
}

/** Clicks a button and waits until its action has ended (it is disabled while it runs). */
async function click(page: Page, id: string) {
  await byId(page, id).click()
  await page.waitForSelector(`[data-testid="${id}"]:not([disabled])`)
}

/**
 * The page closed the channel of one $0.001 call: no error shown, the refund in its words, one
 * close at the server, and the rest of the $0.10 deposit back in the wallet.
 */
async function expectClosedAfterOneCall(
  page: Page,
  dapp: Awaited<ReturnType<typeof startDapp>>,
  walletBefore: bigint,
) {
  expect(await byId(page, 'message').textContent()).toBe('')
  expect(await byId(page, 'closed').textContent()).toBe(
    'Closed: $0.001 paid, $0.099 refunded to your wallet.',
  )
  expect(dapp.rpc.counters.payments.close).toBe(1)
  expect(await balanceOf(net, dapp.wallet)).toBe(walletBefore + 99_000n)
}

browserTest(
  'after a reload, "Close channel" gets the refund without another paid call',
  async () => {
    const dapp = await startDapp({ net, funding })
    const { context, page } = await open(dapp.page.url)
    try {
      await allow(page)
      await click(page, 'call')
      expect(await byId(page, 'receipts').getAttribute('data-count')).toBe('1')
      await page.reload()
      await page.waitForSelector('body[data-ready="true"]')
      const walletBefore = await balanceOf(net, dapp.wallet)

      await byId(page, 'close').click()
      await page.waitForSelector(
        '[data-testid="closed"][data-refunded], [data-testid="message"]:not(:empty)',
      )
      await expectClosedAfterOneCall(page, dapp, walletBefore)
      expect(dapp.rpc.counters.payments).toEqual({ ...noPayments, open: 1, close: 1 })
      expect(await byId(page, 'deposit').textContent()).toBe('–')
    } finally {
      await context.close()
      await dapp.stop()
    }
  },
)

browserTest(
  '"Forget" with an open channel closes it first: the deposit comes back, then the key is deleted',
  async () => {
    const dapp = await startDapp({ net, funding })
    const { context, page } = await open(dapp.page.url)
    try {
      await allow(page)
      await click(page, 'call')
      const walletBefore = await balanceOf(net, dapp.wallet)

      await byId(page, 'forget').click()
      await page.waitForSelector(
        '[data-testid="allow"]:not([hidden]), [data-testid="message"]:not(:empty)',
      )
      await expectClosedAfterOneCall(page, dapp, walletBefore)
      expect(await byId(page, 'key-status').getAttribute('data-key')).toBe('')
    } finally {
      await context.close()
      await dapp.stop()
    }
  },
)

browserTest(
  'a key whose limit runs out mid-session: the page says so in dollars, nothing more is paid, and nothing secret reaches the console',
  async () => {
    // A call costs $0.05 and a channel locks $0.10: two calls spend the first channel, the third
    // needs a new one. Meanwhile the key's limit is used up elsewhere: its root lowers what is left
    // to $0.001. (On anvil a channel deposit does not count against the key's limit, only fees do.)
    const dapp = await startDapp({ net, funding, price: 50_000n, maxDeposit: 100_000n })
    const { context, page, console, credentials } = await open(dapp.page.url)
    try {
      await allow(page)
      await click(page, 'call')
      await click(page, 'call')
      expect(await byId(page, 'message').textContent()).toBe('')
      expect(await byId(page, 'receipts').getAttribute('data-count')).toBe('2')
      const { devWalletKey } = (await (
        await fetch(new URL('/config.json', dapp.page.url))
      ).json()) as {
        devWalletKey: Hex
      }
      const accessKey = getAddress((await byId(page, 'key-status').getAttribute('data-key'))!)
      await setRemainingLimit(net, Account.fromSecp256k1(devWalletKey), accessKey, 1_000n)

      await byId(page, 'call').click()
      await page.waitForSelector('[data-testid="message"]:not(:empty)')
      expect(await byId(page, 'message').textContent()).toMatch(
        // The deposit ($0.10) and the open's most fee, which follows the localnet's gas price.
        /^The access key's spending limit cannot cover this payment of up to \$0\.1[0-9]{1,5} \(fees included\), or the key expired: nothing was paid\. Close the channel, then forget the key and allow payments again\.$/,
      )
      expect(dapp.rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 1 })
      expect(await byId(page, 'receipts').getAttribute('data-count')).toBe('2')

      // Neither the wallet's key nor any credential the page sent was ever logged.
      expect(credentials).toHaveLength(2)
      for (const line of console) {
        expect(line).not.toContain(devWalletKey.slice(2))
        for (const credential of credentials) expect(line).not.toContain(credential.slice(0, 40))
      }
    } finally {
      await context.close()
      await dapp.stop()
    }
  },
)
