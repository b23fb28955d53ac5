import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import type { Page } from 'playwright-core'
import { type Address, createPublicClient, getAddress, type Hash, http, parseEventLogs } from 'viem'
import { Abis, Actions, Addresses } from 'viem/tempo'
import { expect } from 'vitest'
import { startDapp } from '../../examples/dapp/start.js'
import { findChromium, withBrowser } from '../support/browser.js'
import { challengedOnce, noPayments } from '../support/counters.js'
import { useDapp } from '../support/dapp.js'
import { balanceOf, tip20 } from '../support/localnet.js'

const chromiumFound = await findChromium()
const browserTest = withBrowser(chromiumFound)
/** Where CI keeps the page's screenshot (gitignored). */
const screenshotPath = 'artifacts/dapp.png'

const funding = 10_000_000n
const price = 1_000n
const maxDeposit = 100_000n

const running = useDapp(chromiumFound, { funding, price, maxDeposit })

const plain = () =>
  createPublicClient({
    chain: running.net.chain,
    transport: http(running.net.rpcUrl),
    cacheTime: 0,
  })

/** Opens the page, collecting the errors it leaves uncaught (the browser's own log of each 402 is expected). */
async function open(page: Page, url: string) {
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  await page.goto(url)
  await page.waitForSelector('body[data-ready="true"]')
  return errors
}

const byId = (page: Page, id: string) => page.locator(`[data-testid="${id}"]`)

/** Clicks "Get the block number" and waits for the receipt it brings (the `count`th of the page). */
async function paidCall(page: Page, count: number) {
  // The handler disables the button at once, and enables it again when the call has ended.
  await byId(page, 'call').click()
  await page.waitForSelector('[data-testid="call"]:not([disabled])')
  expect(await byId(page, 'message').textContent()).toBe('')
  expect(await byId(page, 'receipts').getAttribute('data-count')).toBe(String(count))
}

const receiptsOf = (page: Page) =>
  byId(page, 'receipts')
    .locator('li')
    .evaluateAll((items) =>
      items.map((item) => ({
        text: item.textContent,
        amount: (item as HTMLElement).dataset.amount,
        spent: (item as HTMLElement).dataset.spent,
      })),
    )

const channelShown = async (page: Page) => ({
  deposit: [
    await byId(page, 'deposit').textContent(),
    await byId(page, 'deposit').getAttribute('data-amount'),
  ],
  spent: [
    await byId(page, 'spent').textContent(),
    await byId(page, 'spent').getAttribute('data-amount'),
  ],
  remaining: [
    await byId(page, 'remaining').textContent(),
    await byId(page, 'remaining').getAttribute('data-amount'),
  ],
})

/**
 * What the page's IndexedDB holds of access keys: each key's id and whether its private key can be
 * read. (A string, so that nothing the test's compiler adds to functions reaches the page.)
 */
const storedKeys = (page: Page) =>
  page.evaluate<{ id: string; extractable: boolean; exported: string }[]>(`
    new Promise((resolve, reject) => {
      const request = indexedDB.open('viem-mpp', 1)
      request.onerror = () => reject(request.error)
      request.onsuccess = () => {
        const store = request.result.transaction('accessKeys').objectStore('accessKeys')
        const values = store.getAll()
        const ids = store.getAllKeys()
        ids.onsuccess = () =>
          Promise.all(
            values.result.map(async ({ privateKey }, index) => ({
              id: String(ids.result[index]),
              extractable: privateKey.extractable,
              exported: await crypto.subtle
                .exportKey('pkcs8', privateKey)
                .then(() => 'exported', (error) => error.name),
            })),
          ).then(resolve, reject)
      }
    })
  `)

async function reserveEvents<name extends 'ChannelOpened' | 'ChannelClosed'>(
  name: name,
  payer: Address,
) {
  const logs = await plain().getLogs({ address: Addresses.tip20ChannelReserve, fromBlock: 0n })
  return parseEventLogs({ abi: Abis.tip20ChannelReserve, logs, eventName: name }).filter(
    (log) => (log.args as { payer: Address }).payer.toLowerCase() === payer.toLowerCase(),
  )
}

/** The pathUSD transfers of transaction `hash`. */
async function transfersOf(hash: Hash) {
  const { logs } = await plain().getTransactionReceipt({ hash })
  return parseEventLogs({ abi: tip20, logs, eventName: 'Transfer' })
    .filter((log) => log.address.toLowerCase() === running.net.currency.toLowerCase())
    .map(({ args }) => args)
}

/** What `payer` paid in fees in transaction `hash`: its transfer to the fee manager. */
async function feeOf(hash: Hash, payer: Address) {
  const fees = (await transfersOf(hash)).filter(
    ({ from, to }) => from === payer && to.toLowerCase().startsWith('0xfeec'),
  )
  expect(fees).toHaveLength(1)
  return fees[0]!.amount
}

browserTest(
  'the dApp pays calls with an access key the wallet allowed once, reuses its channel after a reload, and closes it for the refund',
  async () => {
    const context = await running.browser.newContext()
    const page = await context.newPage()
    const errors = await open(page, running.dapp.page.url)
    expect(await byId(page, 'wallet-address').textContent()).toBe(running.dapp.wallet)
    expect(await byId(page, 'wallet-balance').textContent()).toBe('$10.00')
    expect(await byId(page, 'key-status').textContent()).toBe(
      'None: allow payments to make paid calls.',
    )

    // The wallet is asked once, for the access key, with its limit in dollars.
    await byId(page, 'allow').click()
    await page.waitForSelector('[data-testid="prompt"]:not([hidden])')
    expect(await byId(page, 'prompt-text').textContent()).toMatch(
      /^Allow this page to pay for RPC calls from your wallet: at most \$1\.00, fees included, until /,
    )
    await byId(page, 'approve').click()
    await page.waitForSelector('[data-testid="key-status"][data-key^="0x"]')
    const accessKey = getAddress((await byId(page, 'key-status').getAttribute('data-key'))!)
    expect(await byId(page, 'key-status').textContent()).toMatch(
      /^Allowed to spend up to \$1\.00 until /,
    )

    // Three paid calls, no prompt: one channel opened (its first voucher in the open), two vouchers.
    for (const n of [1, 2, 3]) await paidCall(page, n)
    expect(await byId(page, 'prompt').isHidden()).toBe(true)
    expect(await receiptsOf(page)).toEqual([
      {
        text: 'Paid $0.001 (opened a channel with $0.10) · spent so far $0.001',
        amount: '1000',
        spent: '1000',
      },
      { text: 'Paid $0.001 · spent so far $0.002', amount: '1000', spent: '2000' },
      { text: 'Paid $0.001 · spent so far $0.003', amount: '1000', spent: '3000' },
    ])
    expect(await channelShown(page)).toEqual({
      deposit: ['$0.10', '100000'],
      spent: ['$0.003', '3000'],
      remaining: ['$0.097', '97000'],
    })
    expect(running.dapp.rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 2 })
    // The channel's authorized signer is the access key, which the open provisioned on chain.
    const opened = await reserveEvents('ChannelOpened', running.dapp.wallet)
    expect(opened.map(({ args }) => [args.authorizedSigner, args.deposit])).toEqual([
      [accessKey, maxDeposit],
    ])
    const metadata = await Actions.accessKey.getMetadata(plain(), {
      account: running.dapp.wallet,
      accessKey,
    })
    expect(metadata.address).toBe(accessKey)
    const openFee = await feeOf(opened[0]!.transactionHash, running.dapp.wallet)
    expect(await balanceOf(running.net, running.dapp.wallet)).toBe(funding - maxDeposit - openFee)

    // A reload finds the key in IndexedDB and the channel in localStorage: no prompt, no new open.
    await page.reload()
    await page.waitForSelector('body[data-ready="true"]')
    expect(getAddress((await byId(page, 'key-status').getAttribute('data-key'))!)).toBe(accessKey)
    // IndexedDB holds the non-extractable CryptoKey itself: the page can sign with it, never read it.
    expect(await storedKeys(page)).toEqual([
      {
        id: `accessKey:${running.net.chain.id}:${running.dapp.wallet.toLowerCase()}`,
        extractable: false,
        exported: 'InvalidAccessError',
      },
    ])
    expect(await channelShown(page)).toEqual({
      deposit: ['$0.10', '100000'],
      spent: ['$0.003', '3000'],
      remaining: ['$0.097', '97000'],
    })
    await paidCall(page, 1)
    expect(await receiptsOf(page)).toEqual([
      { text: 'Paid $0.001 · spent so far $0.004', amount: '1000', spent: '4000' },
    ])
    expect(await byId(page, 'prompt').isHidden()).toBe(true)
    expect(running.dapp.rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 3 })
    expect(await reserveEvents('ChannelOpened', running.dapp.wallet)).toHaveLength(1)

    // Close: the payee gets exactly what was spent, the wallet the rest of the deposit.
    const payeeBefore = await balanceOf(running.net, running.dapp.rpc.payee)
    const walletBefore = await balanceOf(running.net, running.dapp.wallet)
    await byId(page, 'close').click()
    await page.waitForSelector('[data-testid="closed"][data-refunded]')
    expect(await byId(page, 'closed').textContent()).toBe(
      'Closed: $0.004 paid, $0.096 refunded to your wallet.',
    )
    expect(await byId(page, 'closed').getAttribute('data-settled')).toBe('4000')
    expect(await byId(page, 'closed').getAttribute('data-refunded')).toBe('96000')
    const [closed, ...more] = await reserveEvents('ChannelClosed', running.dapp.wallet)
    expect(more).toEqual([])
    expect([closed!.args.settledToPayee, closed!.args.refundedToPayer]).toEqual([4_000n, 96_000n])
    // The payee broadcasts the close and pays its fee; the wallet pays nothing for it.
    const closeFee = await feeOf(closed!.transactionHash, running.dapp.rpc.payee)
    expect(await balanceOf(running.net, running.dapp.rpc.payee)).toBe(
      payeeBefore + 4_000n - closeFee,
    )
    expect(await balanceOf(running.net, running.dapp.wallet)).toBe(walletBefore + 96_000n)
    expect(await balanceOf(running.net, running.dapp.wallet)).toBe(funding - 4_000n - openFee)
    expect(running.dapp.rpc.counters.payments.close).toBe(1)
    expect(await byId(page, 'deposit').textContent()).toBe('–')
    expect(await byId(page, 'wallet-balance').getAttribute('data-amount')).toBe(
      String(funding - 4_000n - openFee),
    )
    expect(await byId(page, 'message').textContent()).toBe('')

    await mkdir('artifacts', { recursive: true })
    await page.screenshot({ path: screenshotPath, fullPage: true })
    expect(existsSync(screenshotPath)).toBe(true)

    // Forgetting the key deletes it from IndexedDB: after a reload there is none.
    await byId(page, 'forget').click()
    await page.waitForSelector('[data-testid="allow"]:not([hidden])')
    expect(await storedKeys(page)).toEqual([])
    await page.reload()
    await page.waitForSelector('body[data-ready="true"]')
    expect(await byId(page, 'key-status').getAttribute('data-key')).toBe('')
    expect(errors).toEqual([])
    await context.close()
  },
)

browserTest(
  'a wallet that refuses: the page says so, no key is kept and nothing is paid',
  async () => {
    const context = await running.browser.newContext()
    const page = await context.newPage()
    const errors = await open(page, running.dapp.page.url)
    const counted = structuredClone(running.dapp.rpc.counters)

    await byId(page, 'allow').click()
    await page.waitForSelector('[data-testid="prompt"]:not([hidden])')
    await byId(page, 'reject').click()
    await page.waitForSelector('[data-testid="message"]:not(:empty)')
    expect(await byId(page, 'message').textContent()).toBe(
      'Your wallet declined: no access key was allowed and nothing was paid.',
    )
    expect(await byId(page, 'key-status').textContent()).toBe(
      'None: allow payments to make paid calls.',
    )
    expect(await byId(page, 'call').isDisabled()).toBe(true)

    // Nothing was stored: a reload still has no key.
    await page.reload()
    await page.waitForSelector('body[data-ready="true"]')
    expect(await byId(page, 'key-status').getAttribute('data-key')).toBe('')
    expect(running.dapp.rpc.counters).toEqual(counted)
    expect(errors).toEqual([])
    await context.close()
  },
)

browserTest(
  'a budget too small for the next payment: the page says it is used up, and nothing is signed or paid',
  async () => {
    // One call costs 0.001 plus its most fee: a budget of 0.001 cannot pay the open.
    const small = await startDapp({ net: running.net, funding, price, maxDeposit, budget: 1_000n })
    const context = await running.browser.newContext()
    try {
      const page = await context.newPage()
      const errors = await open(page, small.page.url)
      await byId(page, 'allow').click()
      await page.waitForSelector('[data-testid="prompt"]:not([hidden])')
      await byId(page, 'approve').click()
      await page.waitForSelector('[data-testid="key-status"][data-key^="0x"]')

      await byId(page, 'call').click()
      await page.waitForSelector('[data-testid="message"]:not(:empty)')
      expect(await byId(page, 'message').textContent()).toBe(
        "This visit's budget of $0.001 is used up: the call was not paid and nothing was signed.",
      )
      expect(await byId(page, 'receipts').locator('li').count()).toBe(0)
      // The server saw the unpaid request only; no channel was opened, the wallet kept its funds.
      expect(small.rpc.counters).toEqual(challengedOnce)
      expect(await reserveEvents('ChannelOpened', small.wallet)).toEqual([])
      expect(await balanceOf(running.net, small.wallet)).toBe(funding)
      expect(errors).toEqual([])
    } finally {
      await context.close()
      await small.stop()
    }
  },
)
