/**
 * A dApp that pays a JSON-RPC endpoint per call with a TIP-1034 session: the user's wallet
 * authorizes an in-page access key once; the key opens one channel (its first voucher rides in
 * the open) and signs a voucher per call, with no wallet prompt; the channel is kept in
 * localStorage across reloads and closed on demand, which refunds what was not spent.
 */
import { entryKey } from 'mppx/client'
import { createClient, createPublicClient, erc20Abi, formatUnits, http } from 'viem'
import { Addresses } from 'viem/tempo'
import {
  AccessKeyError,
  type BrowserAccessKey,
  type ChannelEntry,
  closeChannel,
  createAccessKey,
  loadAccessKey,
  localStorageChannelStore,
  mppHttp,
  mppWebSocket,
  PaymentFailedError,
  PaymentRefusedError,
  type SessionProvider,
  session,
} from 'viem-mpp'
// The localnet's chain (anvil's expiring-nonce rules). On Tempo itself: `tempo` from viem/chains.
import { defineLocalnetChain } from '../../src/testing/localnet/chain.js'
import type { DappConfig } from './config.js'
import { devWallet } from './devWallet.js'

const config = (await (await fetch('/config.json')).json()) as DappConfig
const chainRpcUrl = new URL(config.chainRpcPath, location.href).href
const chain = defineLocalnetChain({ id: config.chainId, rpcUrl: chainRpcUrl })
// Reads and transactions of the payments themselves go to the chain's own, unpaid RPC.
const chainClient = createClient({ chain, transport: http(chainRpcUrl) })
const reader = createPublicClient({ chain, transport: http(chainRpcUrl), cacheTime: 0 })
const store = localStorageChannelStore()
const budget = BigInt(config.budget)

const $ = <element extends HTMLElement = HTMLElement>(id: string) =>
  document.querySelector<element>(`[data-testid="${id}"]`) as element

/** A USD amount of the 6-decimal currency, as people read it: $0.001, $0.10, $1.00. */
const dollars = (amount: bigint) =>
  new Intl.NumberFormat('en-US', {
    style: 'currency',
    currency: 'USD',
    minimumFractionDigits: 2,
    maximumFractionDigits: 6,
  }).format(Number(formatUnits(amount, 6)))

function show(message: string, kind: 'error' | 'info' = 'error') {
  $('message').textContent = message
  $('message').className = kind
}

// The wallet asks in the page before it signs; the page says what it is asked for.
let request = ''
const wallet = devWallet(config.devWalletKey, () => {
  $('prompt-text').textContent = request
  $('prompt').hidden = false
  return new Promise<boolean>((resolve) => {
    const answer = (approved: boolean) => () => {
      $('prompt').hidden = true
      resolve(approved)
    }
    $('approve').onclick = answer(true)
    $('reject').onclick = answer(false)
  })
})
$('wallet-address').textContent = wallet.address

let key: BrowserAccessKey | undefined
let provider: SessionProvider | undefined
let client: ReturnType<typeof paidClient> | undefined
let receipts = 0

/** The paid endpoint over WebSocket (`ws://`, `wss://`) or HTTP, with the same payments. */
const overSocket = /^wss?:/i.test(config.paidRpcUrl)

function paidClient(account: BrowserAccessKey['account']) {
  provider = session({ account, client: chainClient, store, maxDeposit: BigInt(config.maxDeposit) })
  const payments: Parameters<typeof mppHttp>[1] & Parameters<typeof mppWebSocket>[1] = {
    provider,
    budget,
    onReceipt({ quote, receipt }) {
      const { spent, channelId } = receipt as { spent?: string; channelId?: string }
      const item = document.createElement('li')
      item.dataset.amount = String(quote.amount)
      item.dataset.spent = spent ?? ''
      item.textContent = `Paid ${dollars(quote.amount)}${
        quote.deposit > 0n ? ` (opened a channel with ${dollars(quote.deposit)})` : ''
      } · spent so far ${spent === undefined ? '?' : dollars(BigInt(spent))}`
      item.title = `channel ${channelId}`
      $('receipts').append(item)
      receipts++
      $('receipts').dataset.count = String(receipts)
      if (spent !== undefined) void showChannel(BigInt(spent))
    },
  }
  return createPublicClient({
    chain,
    cacheTime: 0,
    transport: overSocket
      ? mppWebSocket(config.paidRpcUrl, payments)
      : mppHttp(config.paidRpcUrl, payments),
  })
}

/** The channel kept in localStorage for this endpoint, if any. */
const storedChannel = () =>
  store.forOrigin?.(new URL(config.paidRpcUrl).origin).get(
    entryKey({
      descriptor: { payee: config.payee, token: config.currency },
      escrow: Addresses.tip20ChannelReserve,
      chainId: config.chainId,
    } as unknown as ChannelEntry),
  )

/** The channel kept in localStorage for this endpoint, and what it has spent. */
async function showChannel(spent?: bigint) {
  const entry = await storedChannel()
  if (!entry) {
    for (const id of ['deposit', 'spent', 'remaining', 'channel-id']) $(id).textContent = '–'
    return
  }
  // Before this page's first receipt, the stored voucher total is what was spent.
  const used = spent ?? entry.cumulativeAmount
  $('deposit').textContent = dollars(entry.deposit)
  $('deposit').dataset.amount = String(entry.deposit)
  $('spent').textContent = dollars(used)
  $('spent').dataset.amount = String(used)
  $('remaining').textContent = dollars(entry.deposit - used)
  $('remaining').dataset.amount = String(entry.deposit - used)
  $('channel-id').textContent = entry.channelId
}

async function showWallet() {
  const balance = await reader.readContract({
    address: config.currency,
    abi: erc20Abi,
    functionName: 'balanceOf',
    args: [wallet.address],
  })
  $('wallet-balance').textContent = dollars(balance)
  $('wallet-balance').dataset.amount = String(balance)
}

function showKey() {
  $('allow').hidden = !!key
  $('forget').hidden = !key
  $<HTMLButtonElement>('call').disabled = !key
  $('watch').hidden = !overSocket
  $<HTMLButtonElement>('watch').disabled = !key
  $<HTMLButtonElement>('close').disabled = !key
  $('key-status').textContent = key
    ? `Allowed to spend up to ${dollars(key.limits[0]?.limit ?? 0n)} until ${new Date(
        key.expiry * 1000,
      ).toLocaleString()} · key ${key.account.accessKeyAddress}`
    : 'None: allow payments to make paid calls.'
  $('key-status').dataset.key = key?.account.accessKeyAddress ?? ''
  client = key && paidClient(key.account)
}

/** What a person should read for an error of the wallet or of a payment. */
function explain(error: unknown): string {
  const walked = (error as { walk?: (fn: (e: unknown) => boolean) => unknown }).walk
  const find = <type>(is: (e: unknown) => e is type): type | undefined =>
    is(error) ? error : (walked?.call(error, is) as type | undefined)
  // Payment errors first: a refused payment carries code 4001 too, for viem's fallback().
  const refused = find((e): e is PaymentRefusedError => e instanceof PaymentRefusedError)
  if (refused?.reason === 'budget')
    return `This visit's budget of ${dollars(budget)} is used up: the call was not paid and nothing was signed.`
  if (refused?.reason === 'accessKeyLimit')
    // Closing first: without the key, its channel can no longer be closed from this page.
    return `The access key's spending limit cannot cover this payment of up to ${dollars(
      refused.amount + refused.fee,
    )} (fees included), or the key expired: nothing was paid. Close the channel, then forget the key and allow payments again.`
  if (refused?.reason === 'insufficientFunds')
    return "Your wallet's balance cannot cover this payment: nothing was paid."
  if (refused) return `The payment was refused (${refused.reason}): nothing was paid.`
  const failed = find((e): e is PaymentFailedError => e instanceof PaymentFailedError)
  if (failed)
    return `The server did not accept the payment${failed.settled ? ' (it may have been taken)' : ''}: ${failed.shortMessage}`
  if (error instanceof AccessKeyError) return error.shortMessage
  // EIP-1193's "user rejected" (viem's UserRejectedRequestError), or a passkey prompt dismissed.
  const rejected = find((e): e is { code: number } => (e as { code?: unknown })?.code === 4001)
  if (rejected || (error instanceof DOMException && error.name === 'NotAllowedError'))
    return 'Your wallet declined: no access key was allowed and nothing was paid.'
  return (error as { shortMessage?: string }).shortMessage ?? String(error)
}

/** Runs a button's action, one at a time, showing what went wrong. */
const action = (button: HTMLButtonElement, run: () => Promise<void>) => {
  button.onclick = async () => {
    button.disabled = true
    show('', 'info')
    try {
      await run()
    } catch (error) {
      console.error(error)
      show(explain(error))
    } finally {
      button.disabled = false
    }
  }
}

action($('allow'), async () => {
  const limit = BigInt(config.keyLimit)
  const expiry = Math.floor(Date.now() / 1000) + 86_400
  request = `Allow this page to pay for RPC calls from your wallet: at most ${dollars(
    limit,
  )}, fees included, until ${new Date(expiry * 1000).toLocaleString()}.`
  key = await createAccessKey({
    root: wallet,
    chainId: config.chainId,
    currency: config.currency,
    limit,
    expiry,
  })
  showKey()
})

action($('forget'), async () => {
  unwatch?.()
  unwatch = undefined
  // Without the key no voucher or cooperative close can be signed for its channel: close it first.
  await closeChannels()
  await key?.forget()
  key = undefined
  showKey()
})

action($('call'), async () => {
  if (!client) return
  const block = await client.getBlockNumber()
  $('result').textContent = `block ${block}`
})

/**
 * New blocks as they come, over a paid subscription: the subscription is paid once (a voucher),
 * the blocks it brings are not. Clicked again, it stops.
 */
let unwatch: (() => void) | undefined
action($('watch'), async () => {
  if (unwatch) {
    unwatch()
    unwatch = undefined
    $('watch').textContent = 'Watch new blocks (paid once)'
    return
  }
  if (!client) return
  let blocks = 0
  unwatch = client.watchBlockNumber({
    onBlockNumber(number) {
      blocks++
      $('watched').textContent = `${blocks} new blocks, the latest ${number}`
      $('watched').dataset.count = String(blocks)
    },
    onError: (error) => show(explain(error)),
  })
  $('watch').textContent = 'Stop watching'
})

/**
 * Closes the channels this visit used, and the one kept from an earlier visit (after a reload the
 * provider has used none yet), showing what was paid and refunded. Returns how many were closed.
 */
async function closeChannels() {
  if (!provider || !key) return 0
  const closed: { settled: bigint; refunded: bigint }[] = await provider.close()
  const entry = await storedChannel()
  if (entry)
    closed.push(
      await closeChannel({
        store,
        channelId: entry.channelId,
        url: config.paidRpcUrl,
        account: key.account,
        client: chainClient,
      }),
    )
  if (closed.length === 0) return 0
  const settled = closed.reduce((sum, channel) => sum + channel.settled, 0n)
  const refunded = closed.reduce((sum, channel) => sum + channel.refunded, 0n)
  $('closed').textContent =
    `Closed: ${dollars(settled)} paid, ${dollars(refunded)} refunded to your wallet.`
  $('closed').dataset.settled = String(settled)
  $('closed').dataset.refunded = String(refunded)
  await Promise.all([showChannel(), showWallet()])
  return closed.length
}

action($('close'), async () => {
  if ((await closeChannels()) === 0) show('There is no open channel to close.', 'info')
})

key = await loadAccessKey({ root: wallet.address, chainId: config.chainId })
showKey()
await Promise.all([showChannel(), showWallet()])
document.body.dataset.ready = 'true'
