import { Challenge, type Receipt } from 'mppx'
import {
  type BaseError,
  CallExecutionError,
  ContractFunctionExecutionError,
  createClient,
  createPublicClient,
  createWalletClient,
  defineChain,
  fallback,
  type Hex,
  http,
  parseEventLogs,
  publicActions,
  UserRejectedRequestError,
} from 'viem'
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts'
import { tempoLocalnet } from 'viem/chains'
import { beforeAll, describe, expect, test, vi } from 'vitest'
import {
  charge,
  mppHttp,
  type PaymentEvent,
  PaymentFailedError,
  PaymentRefusedError,
  PaymentRequiredError,
  tempo,
} from '../../src/index.js'
import type { Localnet, PaidRpc } from '../../src/testing/index.js'
import { challengedOnce, chargeCounters, noPayments } from '../support/counters.js'
import { tip20, useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'
import { sessionHelpers } from '../support/sessions.js'

const pathUsd = '0x20c0000000000000000000000000000000000000'

const localnet = useLocalnet()
const { balanceOf } = localnet
const { plain, accountOf, paidClient } = sessionHelpers(localnet)
let net: Localnet
let rpc: PaidRpc
beforeAll(() => {
  net = localnet.net
})

/** Starts the paid RPC under test in front of the localnet; stopped after each test. */
async function start(price = 1_000n) {
  rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  return rpc
}

/** A charge provider paying from `accounts[index]`, preparing on a free client of `chain`. */
function provider(index = 0, chain = net.chain) {
  return charge({
    account: accountOf(index),
    client: createClient({ chain, transport: http(net.rpcUrl) }),
  })
}

/** The most fee `provider(index)` quotes now for a charge of `rpc`, with nothing signed. */
async function maxFee(rpc: PaidRpc, index = 2) {
  const challenge = Challenge.from({
    id: 'quote',
    realm: 'quote',
    method: 'tempo',
    intent: 'charge',
    request: { amount: String(rpc.price), currency: pathUsd, recipient: rpc.payee },
  })
  const prepared = await provider(index).prepare({
    challenge,
    request: { url: rpc.url, method: 'POST', headers: new Headers(), body: '{}' },
    signal: new AbortController().signal,
  })
  await prepared.rollback()
  return prepared.quote.fee
}

/** A `fetch` that records each POST it sends: its JSON-RPC methods and whether it carried a credential. */
function recordingFetch() {
  const sent: { methods: string[]; paid: boolean }[] = []
  const fetchFn: typeof globalThis.fetch = (input, init) => {
    const body = JSON.parse(String(init?.body)) as { method: string } | { method: string }[]
    sent.push({
      methods: [body].flat().map(({ method }) => method),
      paid: new Headers(init?.headers).get('authorization')?.startsWith('Payment ') ?? false,
    })
    return globalThis.fetch(input, init)
  }
  return { fetchFn, sent }
}

describe('single calls', () => {
  test('each call is paid once and returns what the free node returns', async () => {
    const rpc = await start()
    const challenged = vi.fn()
    const sent: PaymentEvent[] = []
    const receipts: (PaymentEvent & { receipt: Receipt.Receipt | undefined })[] = []
    const client = paidClient(rpc.url, {
      provider: provider(0),
      onChallenge: challenged,
      onPaymentSent: (event) => sent.push(event),
      onReceipt: (event) => receipts.push(event),
    })
    const free = plain()
    const watched = net.accounts[5]!.address
    const before = await balanceOf(rpc.payee)

    // The localnet mines a block every second, and each payment mines one: the block number can
    // only be bracketed, and the block it names must be the same block on both.
    const lowest = await free.getBlockNumber()
    const blockNumber = await client.getBlockNumber()
    const highest = await free.getBlockNumber()
    expect(blockNumber).toBeGreaterThan(lowest) // the payment itself was mined first
    expect(blockNumber).toBeLessThanOrEqual(highest)
    expect((await free.getBlock({ blockNumber })).number).toBe(blockNumber)

    expect(await client.getChainId()).toBe(1337)
    expect(await free.getChainId()).toBe(1337)

    const balance = await client.getBalance({ address: watched })
    expect(balance).toBe(await free.getBalance({ address: watched }))

    const calls = 3
    const { counters } = rpc
    expect(counters.payments).toEqual({ ...noPayments, charge: calls })
    expect(counters.forwarded).toBe(calls)
    expect(counters.challenges).toBe(calls)
    expect(counters.requests).toBe(2 * calls) // one unpaid probe and one paid resend per call
    const payeeGain = (await balanceOf(rpc.payee)) - before
    expect(payeeGain).toBe(rpc.price * BigInt(counters.payments.charge))
    expect(payeeGain).toBe(3_000n)

    expect(challenged).toHaveBeenCalledTimes(calls)
    expect(sent).toHaveLength(calls)
    for (const event of sent) {
      expect(event.quote).toEqual({
        method: 'tempo',
        intent: 'charge',
        amount: rpc.price,
        deposit: 0n,
        fee: expect.any(BigInt),
        feeToken: pathUsd,
        currency: pathUsd,
        recipient: rpc.payee,
        transfers: [{ recipient: rpc.payee, amount: rpc.price, memo: expect.any(String) }],
        chainId: 1337,
      })
      expect(event.origin).toBe(rpc.url)
      expect(event.challenge.intent).toBe('charge')
    }
    expect(new Set(sent.map((event) => event.challenge.id)).size).toBe(calls)

    expect(receipts).toHaveLength(calls)
    const references = new Set<string>()
    for (const [i, { receipt, challenge }] of receipts.entries()) {
      expect(challenge.id).toBe(sent[i]!.challenge.id)
      expect(receipt?.method).toBe('tempo')
      expect(receipt?.status).toBe('success')
      expect(receipt?.reference).toMatch(/^0x[0-9a-f]{64}$/)
      const mined = await free.getTransactionReceipt({ hash: receipt!.reference as Hex })
      expect(mined.status).toBe('success')
      expect(mined.from).toBe(net.accounts[0]!.address.toLowerCase())
      const paid = parseEventLogs({ abi: tip20, logs: mined.logs, eventName: 'Transfer' }).filter(
        (log) => log.address === pathUsd && log.args.to === rpc.payee,
      )
      expect(paid.map((log) => log.args.amount)).toEqual([rpc.price])
      references.add(receipt!.reference)
    }
    expect(references.size).toBe(calls)
  })
})

test('concurrent identical calls are deduplicated by viem into one paid POST', async () => {
  const rpc = await start()
  const before = await balanceOf(rpc.payee)
  const client = paidClient(rpc.url, { provider: provider(1) })
  expect(
    await Promise.all([client.getChainId(), client.getChainId(), client.getChainId()]),
  ).toEqual([1337, 1337, 1337])
  expect(rpc.counters).toEqual(chargeCounters({ challenged: 1, paid: 1 }))
  expect((await balanceOf(rpc.payee)) - before).toBe(rpc.price)
})

test('a batch of three calls is one POST and one payment', async () => {
  const rpc = await start()
  const sent = vi.fn()
  const recorder = recordingFetch()
  const client = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: mppHttp(rpc.url, {
      batch: true,
      provider: provider(1),
      onPaymentSent: sent,
      fetchFn: recorder.fetchFn,
    }),
  })
  const watched = net.accounts[6]!.address
  const before = await balanceOf(rpc.payee)
  const expectedBalance = await plain().getBalance({ address: watched })
  const lowest = await plain().getBlockNumber()

  const [chainId, blockNumber, balance] = await Promise.all([
    client.getChainId(),
    client.getBlockNumber(),
    client.getBalance({ address: watched }),
  ])
  expect(chainId).toBe(1337)
  expect(blockNumber).toBeGreaterThan(lowest)
  expect(blockNumber).toBeLessThanOrEqual(await plain().getBlockNumber())
  expect(balance).toBe(expectedBalance)

  expect(rpc.counters).toEqual(chargeCounters({ challenged: 1, paid: 1 }))
  expect(sent).toHaveBeenCalledTimes(1)
  const batch = ['eth_chainId', 'eth_blockNumber', 'eth_getBalance']
  expect(recorder.sent).toEqual([
    { methods: batch, paid: false },
    { methods: batch, paid: true },
  ])
  expect((await balanceOf(rpc.payee)) - before).toBe(rpc.price)
})

test('a wallet client sends a TIP-20 transfer through the paid endpoint, every POST paid once', async () => {
  const rpc = await start()
  const account = accountOf(0)
  const { fetchFn, sent } = recordingFetch()
  const wallet = createWalletClient({
    account,
    chain: net.chain,
    cacheTime: 0,
    pollingInterval: 50,
    transport: mppHttp(rpc.url, { provider: provider(0), fetchFn }),
  }).extend(publicActions)
  const recipient = privateKeyToAddress(generatePrivateKey())
  const payeeBefore = await balanceOf(rpc.payee)
  expect(await balanceOf(recipient)).toBe(0n)

  const hash = await wallet.writeContract({
    address: net.currency,
    abi: tip20,
    functionName: 'transfer',
    args: [recipient, 12_345n],
  })
  const receipt = await wallet.waitForTransactionReceipt({ hash })
  expect(receipt.status).toBe('success')
  expect(receipt.from).toBe(account.address.toLowerCase())
  expect((await plain().getTransactionReceipt({ hash })).status).toBe('success')

  expect(await balanceOf(recipient)).toBe(12_345n)
  const { counters } = rpc
  expect(counters.forwarded).toBeGreaterThanOrEqual(3) // at least chain id, send, receipt
  expect(counters.payments).toEqual({ ...noPayments, charge: counters.forwarded })
  expect(counters.challenges).toBe(counters.forwarded)
  expect(counters.requests).toBe(counters.forwarded + counters.challenges)
  // What the client sent matches: each JSON-RPC POST once unpaid, then once with its credential.
  expect(sent).toHaveLength(counters.requests)
  sent.forEach(({ paid, methods }, i) => {
    expect(paid).toBe(i % 2 === 1)
    if (paid) expect(methods).toEqual(sent[i - 1]!.methods)
  })
  expect(sent.filter(({ paid }) => paid).flatMap(({ methods }) => methods)).toContain(
    'eth_sendRawTransaction',
  )
  expect((await balanceOf(rpc.payee)) - payeeBefore).toBe(
    rpc.price * BigInt(counters.payments.charge),
  )
})

test('a free endpoint is never paid', async () => {
  const rpc = await start() // only to know the payee, whose balance must not move
  const sent = vi.fn()
  const challenged = vi.fn()
  const client = paidClient(net.rpcUrl, {
    provider: provider(0),
    onPaymentSent: sent,
    onChallenge: challenged,
  })
  const before = await balanceOf(rpc.payee)
  const watched = net.accounts[7]!.address

  expect(await client.getChainId()).toBe(1337)
  expect(await client.getBalance({ address: watched })).toBe(
    await plain().getBalance({ address: watched }),
  )
  expect(await client.getBlockNumber()).toBeGreaterThan(0n)

  expect(sent).not.toHaveBeenCalled()
  expect(challenged).not.toHaveBeenCalled()
  expect(await balanceOf(rpc.payee)).toBe(before)
  expect(rpc.counters.requests).toBe(0)
})

describe('spending caps at their exact boundaries', () => {
  const price = 1_000n

  test('maxAmount equal to the price pays', async () => {
    const rpc = await start(price)
    const before = await balanceOf(rpc.payee)
    const client = paidClient(rpc.url, { provider: provider(2), maxAmount: price })
    expect(await client.getChainId()).toBe(1337)
    expect(rpc.counters.payments.charge).toBe(1)
    expect((await balanceOf(rpc.payee)) - before).toBe(price)
  })

  test('maxAmount one below the price refuses, and the server gets no credential', async () => {
    const rpc = await start(price)
    const before = await balanceOf(rpc.payee)
    const sent = vi.fn()
    const client = paidClient(rpc.url, {
      provider: provider(2),
      maxAmount: price - 1n,
      onPaymentSent: sent,
    })
    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('maxAmount')
    expect((error as PaymentRefusedError).amount).toBe(price)
    expect((error as PaymentRefusedError).currency).toBe(pathUsd)
    expect(error.message).toContain('Limit: 999')
    expect(sent).not.toHaveBeenCalled()
    expect(rpc.counters).toEqual(challengedOnce)
    expect(await balanceOf(rpc.payee)).toBe(before)
  })

  test('the fee quoted is at most 2× the fee paid; the budget keeps the fee paid, so two prices, one most fee and one fee paid pay two calls', async () => {
    const rpc = await start(price)
    const payer = accountOf(2).address
    // One call first, without a budget: what the fee of such a payment really is on chain.
    const quoted = await maxFee(rpc)
    const first = await balanceOf(payer)
    await paidClient(rpc.url, { provider: provider(2) }).getChainId()
    const feePaid = first - (await balanceOf(payer)) - price
    console.log(`[fees] a charge's fee: ${quoted} quoted at most, ${feePaid} paid`)
    expect(quoted).toBeGreaterThanOrEqual(feePaid)
    // The most fee: the estimate, a signature's gas and 1.2 × the base fee (which falls meanwhile).
    expect(Number(quoted) / Number(feePaid)).toBeLessThanOrEqual(2)

    const before = await balanceOf(rpc.payee)
    const paying = await balanceOf(payer)
    const budget = 2n * price + quoted + feePaid
    const asked: PaymentEvent[] = []
    const client = paidClient(rpc.url, {
      provider: provider(2),
      budget,
      onPaymentRequired: (event) => void asked.push(event),
    })
    expect(await client.getChainId()).toBe(1337)
    // The second payment fits once the first one's fee is read from the chain.
    expect(await client.getChainId()).toBe(1337)
    expect(rpc.counters.payments.charge).toBe(3)

    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('budget')
    expect((error as PaymentRefusedError).amount).toBe(price)
    // What is left is the budget less what the two payments cost the payer on chain.
    const cost = paying - (await balanceOf(payer))
    expect(error.message).toContain(`Limit: ${budget - cost}`)
    // The third is refused before the hook is asked.
    expect(asked).toHaveLength(2)
    expect((await balanceOf(rpc.payee)) - before).toBe(2n * price)
  })

  test('onPaymentRequired returning false refuses; it is shown the exact quote', async () => {
    const rpc = await start(price)
    const before = await balanceOf(rpc.payee)
    const asked: PaymentEvent[] = []
    const client = paidClient(rpc.url, {
      provider: provider(2),
      onPaymentRequired: (event) => {
        asked.push(event)
        return false
      },
    })
    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('onPaymentRequired')
    expect(asked).toHaveLength(1)
    expect(asked[0]!.quote.amount).toBe(price)
    expect(asked[0]!.quote.currency).toBe(pathUsd)
    expect(asked[0]!.quote.recipient).toBe(rpc.payee)
    expect(asked[0]!.origin).toBe(rpc.url)
    expect(rpc.counters.payments).toEqual(noPayments)
    expect(rpc.counters.forwarded).toBe(0)
    expect(await balanceOf(rpc.payee)).toBe(before)
  })

  test('onPaymentRequired returning true pays', async () => {
    const rpc = await start(price)
    const before = await balanceOf(rpc.payee)
    const onPaymentRequired = vi.fn((event: PaymentEvent) => event.quote.amount === price)
    const client = paidClient(rpc.url, { provider: provider(2), onPaymentRequired })
    expect(await client.getChainId()).toBe(1337)
    expect(onPaymentRequired).toHaveBeenCalledTimes(1)
    expect(rpc.counters.payments.charge).toBe(1)
    expect((await balanceOf(rpc.payee)) - before).toBe(price)
  })

  test('concurrent calls under a budget of two prices and fees: exactly two pay', async () => {
    const rpc = await start(price)
    const before = await balanceOf(rpc.payee)
    const budget = 2n * (price + (await maxFee(rpc)))
    const client = paidClient(rpc.url, { provider: provider(2), budget })
    const watched = net.accounts[8]!.address
    const results = await Promise.allSettled([
      client.getChainId(),
      client.getBlockNumber(),
      client.getBalance({ address: watched }),
    ])
    const fulfilled = results.filter((result) => result.status === 'fulfilled')
    const rejected = results.flatMap((result) => (result.status === 'rejected' ? [result] : []))
    expect(fulfilled).toHaveLength(2)
    expect(rejected).toHaveLength(1)
    expect(rejected[0]!.reason).toBeInstanceOf(PaymentRefusedError)
    expect((rejected[0]!.reason as PaymentRefusedError).reason).toBe('budget')
    expect(rpc.counters).toEqual(chargeCounters({ challenged: 3, paid: 2 }))
    expect((await balanceOf(rpc.payee)) - before).toBe(2n * price)
  })

  test('a refused readContract is wrapped by viem; walk() finds the PaymentRefusedError', async () => {
    const rpc = await start(price)
    const client = paidClient(rpc.url, { provider: provider(2), maxAmount: price - 1n })
    const error = await rejectionOf(
      client.readContract({
        address: net.currency,
        abi: tip20,
        functionName: 'balanceOf',
        args: [rpc.payee],
      }),
    )
    expect(error).toBeInstanceOf(ContractFunctionExecutionError)
    expect(error.cause).toBeInstanceOf(CallExecutionError)
    expect((error.cause as Error).cause).toBeInstanceOf(PaymentRefusedError)
    const refused = (error as BaseError).walk((e) => e instanceof PaymentRefusedError)
    expect((refused as PaymentRefusedError).reason).toBe('maxAmount')
    expect((error as BaseError).shortMessage).toBe(
      'The payment exceeds `maxAmount`; nothing was paid.',
    )
    expect(rpc.counters.payments).toEqual(noPayments)
  })
})

describe('nothing can pay', () => {
  test('without a provider: PaymentRequiredError noProvider, with setup guidance', async () => {
    const rpc = await start()
    const error = await rejectionOf(paidClient(rpc.url).getChainId())
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('noProvider')
    expect((error as PaymentRequiredError).origin).toBe(rpc.url)
    expect(error.message).toContain('provider')
    expect(error.message).toContain('mppHttp(url, { provider: tempo({ account, client }) })')
    expect(rpc.counters).toEqual(challengedOnce)
  })

  test('charge() refuses a chain client that is itself paid', async () => {
    const rpc = await start()
    const paidChainClient = createClient({ chain: net.chain, transport: mppHttp(rpc.url) })
    expect(() => charge({ account: accountOf(3), client: paidChainClient })).toThrow(
      'charge(): `client` must not use a paid (mppHttp) transport.',
    )
    expect(rpc.counters.requests).toBe(0)
  })

  test('a provider for another chain: PaymentRequiredError noSupportedChallenge', async () => {
    const rpc = await start()
    const before = await balanceOf(rpc.payee)
    const otherChain = defineChain({ ...net.chain, id: 4242 })
    const client = paidClient(rpc.url, { provider: provider(3, otherChain) })
    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('noSupportedChallenge')
    expect(error.message).toContain(
      "tempo/charge: chain 1337, but the provider's client is on chain 4242",
    )
    expect(rpc.counters).toEqual(challengedOnce)
    expect(await balanceOf(rpc.payee)).toBe(before)
  })

  test("tempo() with a client on another chain: one reason for both intents, naming the provider's client", async () => {
    const rpc = await localnet.startPaidRpc({ intent: ['session', 'charge'] })
    const otherChain = defineChain({ ...net.chain, id: 4242 })
    const provider = tempo({
      account: accountOf(3),
      client: createClient({ chain: otherChain, transport: http(net.rpcUrl) }),
    })
    const error = await rejectionOf(paidClient(rpc.url, { provider }).getChainId())
    expect((error as PaymentRequiredError).reason).toBe('noSupportedChallenge')
    expect((error as PaymentRequiredError).metaMessages).toEqual([
      `Endpoint: ${rpc.url}`,
      'Offered:',
      "  tempo/session: chain 1337, but the provider's client is on chain 4242",
      "  tempo/charge: chain 1337, but the provider's client is on chain 4242",
    ])
  })

  test("a provider client on viem's tempoLocalnet: the node's expiring-nonce rule, and which chain to use", async () => {
    const rpc = await start()
    const client = createClient({
      chain: { ...tempoLocalnet, rpcUrls: { default: { http: [net.rpcUrl] } } },
      transport: http(net.rpcUrl),
    })
    const error = await rejectionOf(
      paidClient(rpc.url, { provider: charge({ account: accountOf(3), client }) }).getChainId(),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(false)
    expect(error.message).toContain('expiring nonce transaction must have nonce == 0')
    expect(error.message).toContain(
      "the provider a client on the localnet's own chain, `net.chain`",
    )
  })
})

test('viem retries never repeat a refused payment flow', async () => {
  const rpc = await start()
  const client = paidClient(rpc.url, {
    provider: provider(4),
    maxAmount: 1n,
    retryCount: 3,
    retryDelay: 1,
  })
  const calls = 3
  for (let i = 0; i < calls; i++) {
    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('maxAmount')
  }
  expect(rpc.counters).toEqual(chargeCounters({ challenged: calls, paid: 0 }))
})

test('fallback() stops at a refused payment instead of falling through to the free node', async () => {
  const rpc = await start()
  const freeRequests = vi.fn()
  const client = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: fallback([
      mppHttp(rpc.url, { maxAmount: 1n, provider: provider(4) }),
      http(net.rpcUrl, { onFetchRequest: freeRequests }),
    ]),
  })
  const error = await rejectionOf(client.getChainId())

  // viem's fallback wraps the refusal (code 4001) in its UserRejectedRequestError.
  expect(error).toBeInstanceOf(UserRejectedRequestError)
  expect(error).not.toBeInstanceOf(PaymentRefusedError)
  expect(error.cause).toBeInstanceOf(PaymentRefusedError)
  const refused = (error as BaseError).walk((e) => e instanceof PaymentRefusedError)
  expect(refused).toBeInstanceOf(PaymentRefusedError)
  expect((refused as PaymentRefusedError).reason).toBe('maxAmount')

  expect(freeRequests).not.toHaveBeenCalled()
  expect(rpc.counters).toEqual(challengedOnce)
})
