/**
 * A Tempo charge's costs on the localnet: the fee it names and never passes, a budget of exactly
 * two payments, a payer short of funds, split payments (refused, capped, paid), and an access key
 * paying before the chain has provisioned it.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Challenge } from 'mppx'
import { Mppx, Request as MppxRequest, NodeListener, tempo } from 'mppx/server'
import {
  type Address,
  createClient,
  createPublicClient,
  formatUnits,
  getAddress,
  type Hex,
  http,
  parseEventLogs,
} from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Account } from 'viem/tempo'
import { afterEach, beforeAll, describe, expect, test } from 'vitest'
import { charge, mppHttp, type PaymentEvent, PaymentRefusedError } from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import {
  authorizedKey,
  chainReader,
  fillLoggingChainClient,
  keyMetadata,
} from '../support/accessKeys.js'
import { challengedOnce, noPayments } from '../support/counters.js'
import { tip20, useLocalnet, walletClient } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'

const localnet = useLocalnet()
const { balanceOf } = localnet
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

const price = 1_000n

/** A client on the localnet itself (never the paid endpoint), for reading the truth. */
const plain = () => chainReader(net)

/** The chain client `charge()` prepares payments on. */
const chainClient = () => createClient({ chain: net.chain, transport: http(net.rpcUrl) })

/** A fresh account holding exactly `funding` pathUSD, sent from dev account #1. */
async function funded(funding: bigint) {
  const account = Account.fromSecp256k1(generatePrivateKey())
  const hash = await walletClient(net, 1).writeContract({
    address: net.currency,
    abi: tip20,
    functionName: 'transfer',
    args: [account.address, funding],
  })
  expect((await plain().waitForTransactionReceipt({ hash, pollingInterval: 50 })).status).toBe(
    'success',
  )
  expect(await balanceOf(account.address)).toBe(funding)
  return account
}

/** A public client on `url` through mppHttp, recording every payment event. */
function paidClient(url: string, config: Parameters<typeof mppHttp>[1] = {}) {
  const asked: PaymentEvent[] = []
  const sent: PaymentEvent[] = []
  const receipts: Hex[] = []
  const client = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: mppHttp(url, {
      ...config,
      onPaymentRequired: async (event) => {
        asked.push(event)
        return config.onPaymentRequired?.(event)
      },
      onPaymentSent: (event) => sent.push(event),
      onReceipt: ({ receipt }) => receipts.push(receipt?.reference as Hex),
    }),
  })
  return { client, asked, sent, receipts }
}

/** The first challenge `url` answers an unpaid request with. */
async function challengeOf(url: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
  })
  expect(response.status).toBe(402)
  return Challenge.fromResponse(response)
}

/** The quote `charge()` gives for `url`'s challenge, with nothing signed. */
async function quoteOf(url: string, account: Parameters<typeof charge>[0]['account']) {
  const prepared = await charge({ account, client: chainClient() }).prepare({
    challenge: await challengeOf(url),
    request: { url, method: 'POST', headers: new Headers(), body: '{}' },
    signal: new AbortController().signal,
  })
  await prepared.rollback()
  return prepared.quote
}

/** The mined receipt of `hash`, and its TIP-20 transfers. */
async function mined(hash: Hex) {
  const receipt = await plain().getTransactionReceipt({ hash })
  expect(receipt.status).toBe('success')
  const transfers = parseEventLogs({ abi: tip20, logs: receipt.logs, eventName: 'Transfer' })
  return { receipt, transfers }
}

describe('fees', () => {
  test('the quote names the most fee, and the payer never pays more than price + fee', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
    const payer = await funded(1_000_000n)
    const { client, asked, receipts } = paidClient(rpc.url, {
      provider: charge({ account: payer, client: chainClient() }),
    })

    let balance = await balanceOf(payer.address)
    const drops: bigint[] = []
    for (let i = 0; i < 3; i++) {
      expect(await client.getChainId()).toBe(1337)
      const now = await balanceOf(payer.address)
      drops.push(balance - now)
      balance = now
    }

    expect(asked).toHaveLength(3)
    for (const [i, { quote }] of asked.entries()) {
      expect(quote).toEqual({
        method: 'tempo',
        intent: 'charge',
        amount: price,
        deposit: 0n,
        fee: expect.any(BigInt),
        feeToken: net.currency,
        currency: net.currency,
        recipient: rpc.payee,
        transfers: [{ recipient: rpc.payee, amount: price, memo: expect.any(String) }],
        chainId: 1337,
      })
      expect(quote.fee).toBeGreaterThan(0n)
      const { receipt, transfers } = await mined(receipts[i]!)
      // What the payer lost is the price and the fee, and the fee is at most the quoted one.
      const fee = drops[i]! - price
      expect(fee).toBeGreaterThan(0n)
      expect(fee).toBeLessThanOrEqual(quote.fee)
      // Tempo's fee: gas used × gas price, in USD per 10^18 gas, in 6-decimal units, rounded up.
      const feeUnits = 10n ** 12n
      expect(fee).toBe((receipt.gasUsed * receipt.effectiveGasPrice + feeUnits - 1n) / feeUnits)
      const fees = transfers.filter(({ args }) => args.to !== rpc.payee)
      expect(fees.map(({ args }) => [args.from, args.amount])).toEqual([[payer.address, fee]])
    }
    expect(rpc.counters.payments).toEqual({ ...noPayments, charge: 3 })
  })

  test('a budget of exactly 2 × (price + fee) pays two calls and refuses the third', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
    const payer = await funded(1_000_000n)
    const { fee } = await quoteOf(rpc.url, payer)
    const budget = 2n * (price + fee)
    const before = await balanceOf(payer.address)
    const { client, asked } = paidClient(rpc.url, {
      provider: charge({ account: payer, client: chainClient() }),
      budget,
    })
    expect(await client.getChainId()).toBe(1337)
    expect(await client.getChainId()).toBe(1337)
    const error = await rejectionOf(client.getChainId())

    expect(error).toBeInstanceOf(PaymentRefusedError)
    const refused = error as PaymentRefusedError
    expect(refused.reason).toBe('budget')
    // The third was refused before its hook: the two payments' prices and the fees they really
    // cost (read from the chain once each was accepted) are spent: what the payer lost.
    expect(asked).toHaveLength(2)
    const left = budget - (before - (await balanceOf(payer.address)))
    expect(left).toBeLessThan(price + refused.fee)
    expect(refused.amount).toBe(price)
    expect(refused.message).toContain(`Amount: ${price} (base units of ${net.currency})`)
    expect(refused.message).toContain(`Fee: at most ${refused.fee} (base units of ${net.currency})`)
    expect(refused.message).toContain(`Limit: ${left}`)
    expect(rpc.counters).toEqual({
      requests: 6, // the quote's probe, two paid calls (probe + resend each), one refused probe
      challenges: 4,
      forwarded: 2,
      notifications: 0,
      payments: { ...noPayments, charge: 2 },
    })
    // The most fees quoted were above what was paid, and only the fees paid stay counted.
    const quoted = asked.reduce((sum, { quote }) => sum + quote.amount + quote.fee, 0n)
    expect(budget - left).toBeLessThanOrEqual(quoted)
  })
})

describe('low balance', () => {
  test.each([
    ['less than the price', 500n],
    ['the price but not its fee', price],
  ])('a payer holding %s is refused before anything is signed', async (_, funding) => {
    const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
    const payer = await funded(funding)
    const { client, asked, sent } = paidClient(rpc.url, {
      provider: charge({ account: payer, client: chainClient() }),
    })
    const error = await rejectionOf(client.getChainId())

    expect(error).toBeInstanceOf(PaymentRefusedError)
    const refused = error as PaymentRefusedError
    expect(refused.reason).toBe('insufficientFunds')
    expect(refused.shortMessage).toBe(
      "The payer's balance cannot cover the payment and its fee; nothing was signed or paid.",
    )
    expect(refused.fee).toBeGreaterThan(0n)
    expect(refused.metaMessages).toContain(`Payer: ${payer.address}`)
    expect(refused.message).toContain(`In base units: ${funding} of ${price + refused.fee}.`)
    // Refused while preparing: not even the hook was asked, and nothing left.
    expect(asked).toEqual([])
    expect(sent).toEqual([])
    expect(rpc.counters).toEqual(challengedOnce)
    expect(await balanceOf(payer.address)).toBe(funding)
  })
})

/**
 * An mppx server on the localnet whose charges split `splits` (base units) off `amount` to other
 * recipients, forwarding paid requests to the localnet. It counts the credentials it receives.
 */
async function startSplitServer({
  amount,
  splits,
}: {
  amount: bigint
  splits: { recipient: Address; amount: bigint }[]
}) {
  const payee = privateKeyToAccount(net.accounts[9]!.privateKey)
  const client = createClient({ chain: net.chain, transport: http(net.rpcUrl) })
  const mppx = Mppx.create({
    secretKey: 'a'.repeat(64),
    realm: 'split test',
    methods: [
      tempo.charge({
        currency: net.currency,
        decimals: 6,
        recipient: payee.address,
        getClient: () => client,
        splits: splits.map((split) => ({
          recipient: split.recipient,
          amount: formatUnits(split.amount, 6),
        })),
      }),
    ],
  })
  const gate = mppx.compose(['tempo/charge', { amount: formatUnits(amount, 6) }] as never)
  const counters = { requests: 0, credentials: 0, forwarded: 0 }
  const server = createServer(async (req, res) => {
    counters.requests++
    if (req.headers.authorization?.startsWith('Payment ')) counters.credentials++
    const request = MppxRequest.fromNodeListener(req, res)
    const result = await gate(request)
    if (result.status === 402) return NodeListener.sendResponse(res, result.challenge)
    const upstream = await fetch(net.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: await request.text(),
    })
    counters.forwarded++
    return NodeListener.sendResponse(
      res,
      result.withReceipt(
        new Response(await upstream.text(), { headers: { 'content-type': 'application/json' } }),
      ),
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  stops.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  )
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    payee: payee.address,
    counters,
  }
}

const stops: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(stops.splice(0).map((stop) => stop()))
})

describe('splits', () => {
  const amount = 1_000_000n
  const other = getAddress(privateKeyToAccount(generatePrivateKey()).address)

  test('a hook that checks every transfer refuses a split to another address; nothing is signed', async () => {
    const server = await startSplitServer({
      amount,
      splits: [{ recipient: other, amount: 999_999n }],
    })
    const payer = await funded(2_000_000n)
    const payeeBefore = await balanceOf(server.payee)
    const { client, asked, sent } = paidClient(server.url, {
      provider: charge({ account: payer, client: chainClient() }),
      // Approves only what goes, whole, to the payee it expects.
      onPaymentRequired: ({ quote }) =>
        quote.transfers.every(({ recipient }) => recipient === server.payee),
    })
    const error = await rejectionOf(client.getChainId())

    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('onPaymentRequired')
    expect(asked).toHaveLength(1)
    const { quote } = asked[0]!
    expect(quote.amount).toBe(amount)
    expect(quote.recipient).toBe(server.payee)
    expect(quote.transfers).toEqual([
      { recipient: server.payee, amount: 1n, memo: expect.any(String) },
      { recipient: other, amount: 999_999n },
    ])
    expect(sent).toEqual([])
    expect(server.counters).toEqual({ requests: 1, credentials: 0, forwarded: 0 })
    expect(await balanceOf(payer.address)).toBe(2_000_000n)
    expect(await balanceOf(server.payee)).toBe(payeeBefore)
    expect(await balanceOf(other)).toBe(0n)
  })

  test('maxAmount applies to the total, splits included', async () => {
    const server = await startSplitServer({
      amount,
      splits: [{ recipient: other, amount: 999_999n }],
    })
    const payer = await funded(2_000_000n)
    const { client, asked } = paidClient(server.url, {
      provider: charge({ account: payer, client: chainClient() }),
      maxAmount: amount - 1n,
    })
    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('maxAmount')
    expect((error as PaymentRefusedError).amount).toBe(amount)
    expect(asked).toEqual([])
    expect(server.counters.credentials).toBe(0)
  })

  test('an approved split pays every recipient its share in one transaction', async () => {
    const recipient = getAddress(privateKeyToAccount(generatePrivateKey()).address)
    const server = await startSplitServer({
      amount,
      splits: [{ recipient, amount: 250_000n }],
    })
    const payer = await funded(2_000_000n)
    const payeeBefore = await balanceOf(server.payee)
    const { client, receipts } = paidClient(server.url, {
      provider: charge({ account: payer, client: chainClient() }),
      budget: 2_000_000n,
    })
    expect(await client.getChainId()).toBe(1337)

    expect(server.counters).toEqual({ requests: 2, credentials: 1, forwarded: 1 })
    expect((await balanceOf(server.payee)) - payeeBefore).toBe(750_000n)
    expect(await balanceOf(recipient)).toBe(250_000n)
    const { transfers } = await mined(receipts[0]!)
    expect(
      transfers
        .filter(({ args }) => args.to === server.payee || args.to === recipient)
        .map(({ args }) => [args.from, args.to, args.amount]),
    ).toEqual([
      [payer.address, server.payee, 750_000n],
      [payer.address, recipient, 250_000n],
    ])
  })
})

/** A fresh access key of a fresh root wallet, with the root's authorization of it. */
async function accessKey({ funding, limit }: { funding: bigint; limit: bigint }) {
  const root = await funded(funding)
  const { address: keyAddress, account } = await authorizedKey(net, root, { limit })
  return { root, keyAddress, account }
}

const keyOnChain = async (root: Address, accessKey: Address) =>
  (await keyMetadata(net, root, accessKey)).address

describe('an unprovisioned access key', () => {
  test('5 concurrent first payments all succeed: one at a time until the key is provisioned', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
    const { root, keyAddress, account } = await accessKey({
      funding: 1_000_000n,
      limit: 500_000n,
    })
    expect(await keyOnChain(root.address, keyAddress)).toBe(
      '0x0000000000000000000000000000000000000000',
    )
    const chain = fillLoggingChainClient(net)
    const { client, asked, sent, receipts } = paidClient(rpc.url, {
      provider: charge({ account, client: chain.client }),
    })
    const watched = net.accounts[5]!.address
    const results = await Promise.all([
      client.getChainId(),
      client.getBlockNumber(),
      client.getBalance({ address: watched }),
      client.getTransactionCount({ address: watched }),
      client.getGasPrice(),
    ])
    expect(results[0]).toBe(1337)

    expect(rpc.counters).toEqual({
      requests: 10,
      challenges: 5,
      forwarded: 5,
      notifications: 0,
      payments: { ...noPayments, charge: 5 },
    })
    expect(sent).toHaveLength(5)
    expect(new Set(receipts).size).toBe(5)
    expect(getAddress(await keyOnChain(root.address, keyAddress))).toBe(keyAddress)
    // The authorization rode on one transaction only, and was never refused.
    expect(chain.fills.filter(({ keyAuthorization }) => keyAuthorization)).toHaveLength(1)
    expect(chain.fills).toHaveLength(5)
    expect(chain.fills.filter(({ refused }) => refused)).toEqual([])
    let withAuthorization = 0
    for (const hash of receipts) {
      const transaction = (await plain().getTransaction({ hash })) as unknown as {
        keyAuthorization?: unknown
      }
      if (transaction.keyAuthorization) withAuthorization++
    }
    expect(withAuthorization).toBe(1)
    // The root wallet paid 5 prices and fees within the 5 quoted fees.
    const spent = 1_000_000n - (await balanceOf(root.address))
    const quoted = asked.reduce((sum, { quote }) => sum + quote.amount + quote.fee, 0n)
    expect(spent).toBeGreaterThan(5n * price)
    expect(spent).toBeLessThanOrEqual(quoted)
  })

  test('recover(keyNotProvisioned) says yes only while the chain lacks the key', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
    const { root, keyAddress, account } = await accessKey({
      funding: 1_000_000n,
      limit: 500_000n,
    })
    const provider = charge({ account, client: chainClient() })
    const challenge = await challengeOf(rpc.url)
    const recover = () =>
      provider.recover!({ reason: 'keyNotProvisioned', challenge, problem: undefined })
    // Not on chain, and an authorization to attach: a fresh payment may succeed.
    expect(await recover()).toBe(true)
    expect(await recover()).toBe(true)
    // Other rejections are not a charge's to recover from.
    expect(await provider.recover!({ reason: 'channelGone', challenge, problem: undefined })).toBe(
      false,
    )

    const { client } = paidClient(rpc.url, { provider })
    expect(await client.getChainId()).toBe(1337)
    expect(getAddress(await keyOnChain(root.address, keyAddress))).toBe(keyAddress)
    // On chain now: re-authorizing it would fail (KeyAlreadyExists).
    expect(await recover()).toBe(false)
  })

  test('recover(keyNotProvisioned) says no for a key without an authorization', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
    const root = await funded(1_000n)
    const account = Account.fromSecp256k1(generatePrivateKey(), { access: root })
    const provider = charge({ account, client: chainClient() })
    const challenge = await challengeOf(rpc.url)
    expect(
      await provider.recover!({ reason: 'keyNotProvisioned', challenge, problem: undefined }),
    ).toBe(false)
  })
})
