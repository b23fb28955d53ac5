import { Challenge, Credential } from 'mppx'
import {
  createClient,
  getAbiItem,
  type Hex,
  keccak256,
  slice,
  stringToHex,
  toFunctionSelector,
} from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { tempoLocalnet } from 'viem/chains'
import { Abis, Account, Transaction } from 'viem/tempo'
import { afterEach, describe, expect, test, vi } from 'vitest'
import {
  charge,
  InvalidQuoteError,
  type MppHttpTransportConfig,
  mppHttp,
  type PaymentEvent,
  PaymentFailedError,
  type PaymentProvider,
  PaymentRefusedError,
  PaymentRequiredError,
} from '../../src/index.js'
import {
  challengeHeader,
  currency,
  fakeProvider,
  recipient,
  stubChainClient,
} from '../support/fakePayments.js'
import { useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'
import { call, clientFor, paywall, scriptedServer } from '../support/scriptedServer.js'

const serve = useFakeServers()
const account = privateKeyToAccount(generatePrivateKey())
const other = '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc'
const memo = `0x${'ab'.repeat(32)}` as const
const paidRequest = { url: 'http://x', method: 'POST', headers: new Headers(), body: '{}' }

function tempoCharge(request: Record<string, unknown>, id = 'c') {
  return Challenge.from({
    id,
    realm: 'r',
    method: 'tempo',
    intent: 'charge',
    request: { amount: '1000000', currency, recipient, ...request },
    expires: new Date(Date.now() + 60_000).toISOString(),
  })
}

const splits = (...entries: unknown[]) => ({ methodDetails: { splits: entries } })

/** `charge()`'s payment of `account`, prepared on `client` for a tempo charge with `request`. */
const prepareCharge = (
  client: ReturnType<typeof stubChainClient>['client'],
  request: Record<string, unknown> = {},
) =>
  charge({ account, client }).prepare({
    challenge: tempoCharge(request),
    request: paidRequest,
    signal: new AbortController().signal,
  })

/** A server that wants a tempo charge per request on chain 1337, with one split of `split`. */
const splitPaywall = (split: Record<string, unknown>) =>
  serve(
    paywall({
      challenge: () =>
        Challenge.serialize(tempoCharge({ methodDetails: { chainId: 1337, splits: [split] } })),
    }),
  )

/** A client of `url` on the local Tempo chain paying with `charge()`, prepared on a stub chain. */
function chargingClient(url: string, config: Omit<MppHttpTransportConfig, 'provider'> = {}) {
  const { client: chainClient, methods } = stubChainClient()
  const client = createClient({
    chain: tempoLocalnet,
    transport: mppHttp(url, { provider: charge({ account, client: chainClient }), ...config }),
  })
  return { client, methods }
}

/** mppx's attribution memo for challenge `c` of realm `r`, as the byte layout defines it. */
const attribution = (id: string, realm: string) =>
  `${slice(keccak256(stringToHex('mpp')), 0, 4)}01${slice(keccak256(stringToHex(realm)), 0, 10).slice(2)}${'00'.repeat(10)}${slice(keccak256(stringToHex(id)), 0, 7).slice(2)}`

describe('splits', () => {
  test.each([
    ['one split', splits({ amount: '999999', recipient: other }), true],
    ['a split with a memo', splits({ amount: '1', recipient: other, memo }), true],
    [
      'ten splits',
      splits(...Array.from({ length: 10 }, () => ({ amount: '1', recipient: other }))),
      true,
    ],
    ['splits summing to the amount', splits({ amount: '1000000', recipient: other }), false],
    [
      'splits above the amount',
      splits({ amount: '600000', recipient: other }, { amount: '600000', recipient: other }),
      false,
    ],
    ['a zero split', splits({ amount: '0', recipient: other }), false],
    ['a negative split', splits({ amount: '-1', recipient: other }), false],
    ['a decimal split', splits({ amount: '1.5', recipient: other }), false],
    ['a split to no address', splits({ amount: '1', recipient: 'acct_1' }), false],
    ['a split without a recipient', splits({ amount: '1' }), false],
    ['a split with a short memo', splits({ amount: '1', recipient: other, memo: '0xdead' }), false],
    ['no splits at all in the array', splits(), false],
    [
      'eleven splits',
      splits(...Array.from({ length: 11 }, () => ({ amount: '1', recipient: other }))),
      false,
    ],
    [
      'splits that are not an array',
      { methodDetails: { splits: { amount: '1', recipient: other } } },
      false,
    ],
  ])('%s', (_, request, supported) => {
    const { client } = stubChainClient()
    expect(charge({ account, client }).supports(tempoCharge(request))).toBe(supported)
  })

  test('the quote lists every transfer: the primary recipient gets what the splits leave', async () => {
    const { client } = stubChainClient()
    const challenge = tempoCharge(
      splits({ amount: '999999', recipient: other }, { amount: '0', recipient: other }),
    )
    expect(charge({ account, client }).supports(challenge)).toBe(false)

    const prepared = await prepareCharge(
      client,
      splits({ amount: '900000', recipient: other }, { amount: '99999', recipient: other, memo }),
    )
    expect(prepared.quote.amount).toBe(1_000_000n)
    expect(prepared.quote.recipient).toBe(recipient)
    expect(prepared.quote.transfers).toEqual([
      // The primary transfer binds the payment to the challenge, as mppx's servers require.
      { recipient, amount: 1n, memo: attribution('c', 'r') },
      { recipient: other, amount: 900_000n },
      { recipient: other, amount: 99_999n, memo },
    ])
    const total = prepared.quote.transfers.reduce((sum, transfer) => sum + transfer.amount, 0n)
    expect(total).toBe(prepared.quote.amount)
  })

  test("the challenge's own memo goes on the primary transfer", async () => {
    const { client } = stubChainClient()
    const prepared = await prepareCharge(client, { methodDetails: { memo } })
    expect(prepared.quote.transfers).toEqual([{ recipient, amount: 1_000_000n, memo }])
  })

  test('a hook that checks every recipient refuses a hidden split; no credential is sent', async () => {
    const server = await splitPaywall({ amount: '999999', recipient: other })
    const asked: PaymentEvent[] = []
    const { client, methods } = chargingClient(server.url, {
      onPaymentRequired: (event) => {
        asked.push(event)
        return event.quote.transfers.every((transfer) => transfer.recipient === recipient)
      },
    })
    const error = await rejectionOf(client.request({ method: 'eth_chainId' }))

    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('onPaymentRequired')
    expect(asked.map(({ quote }) => quote.transfers.map((t) => [t.recipient, t.amount]))).toEqual([
      [
        [recipient, 1n],
        [other, 999_999n],
      ],
    ])
    // The hook's own check on `recipient` alone would have passed.
    expect(asked[0]!.quote.recipient).toBe(recipient)
    expect(server.paid()).toEqual([])
    expect(server.requests).toHaveLength(1)
    expect(methods).not.toContain('eth_sendRawTransaction')
  })

  test('malformed splits: the challenge is passed over, and listed so', async () => {
    const server = await splitPaywall({ amount: '1000000', recipient: other })
    const { client, methods } = chargingClient(server.url)
    const error = await rejectionOf(client.request({ method: 'eth_chainId' }))
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('noSupportedChallenge')
    expect(error.message).toContain('tempo/charge: malformed charge request')
    expect(server.paid()).toEqual([])
    expect(methods).toEqual([])
  })
})

describe('fees', () => {
  test('the most fee is gas × fee cap in the fee token: the currency, unless the chain or payer names one', async () => {
    const { client } = stubChainClient({ gas: 100_000n, baseFee: 10_000_000_000n })
    const prepared = await prepareCharge(client)
    // (100,000 + 5,000 gas) × 1.2 × 10 gwei / 10^12 = 1,260.
    expect(prepared.quote.fee).toBe(1_260n)
    expect(prepared.quote.feeToken).toBe(currency)
  })

  test('a sponsored charge (feePayer: true) costs the payer no fee', async () => {
    const { client } = stubChainClient()
    const prepared = await prepareCharge(client, { methodDetails: { feePayer: true } })
    expect(prepared.quote.fee).toBe(0n)
    expect(prepared.quote.feeToken).toBeUndefined()
  })

  test('a balance below price + fee is refused while preparing, with both figures', async () => {
    // Fee: (50,000 + 5,000) × 1.2 × 20 gwei / 10^12 = 1,320.
    const { client } = stubChainClient({ balance: 1_001_319n })
    const error = await rejectionOf(prepareCharge(client))
    expect(error).toBeInstanceOf(PaymentRefusedError)
    const refused = error as PaymentRefusedError
    expect(refused.reason).toBe('insufficientFunds')
    expect(refused.amount).toBe(1_000_000n)
    expect(refused.fee).toBe(1_320n)
    expect(refused.metaMessages).toEqual([
      `Amount: 1000000 (base units of ${currency})`,
      `Fee: at most 1320 (base units of ${currency})`,
      `Payer: ${account.address}`,
      'Balance: 1.001319 pathUSD; needed: 1.00132 pathUSD (the payment 1 pathUSD + the most fee 0.00132 pathUSD). In base units: 1001319 of 1001320.',
    ])

    const { client: enough } = stubChainClient({ balance: 1_001_320n })
    const prepared = await prepareCharge(enough)
    expect(prepared.quote.fee).toBe(1_320n)
  })
})

describe('a transaction that waited long for approval', () => {
  const validBeforeOf = (authorization: string) => {
    const { payload } = Credential.deserialize<{ signature: Hex }>(authorization)
    const transaction = Transaction.deserialize(payload.signature) as { validBefore?: number }
    return transaction.validBefore
  }

  afterEach(() => {
    vi.useRealTimers()
  })

  test('is prepared again before signing, within the quoted fee', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const stub = stubChainClient()
    const prepared = await prepareCharge(stub.client)
    // The hook took 20 s: 5 s of the transaction's 25 would be left.
    vi.setSystemTime(Date.now() + 20_000)
    stub.chain.baseFee /= 2n
    const validBefore = validBeforeOf(await prepared.authorize())
    expect(validBefore).toBe(Math.floor(Date.now() / 1000) + 25)
  })

  test('fails to authorize when the fee rose above the quote meanwhile; nothing is signed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const stub = stubChainClient()
    const prepared = await prepareCharge(stub.client)
    expect(prepared.quote.fee).toBe(1_320n)
    vi.setSystemTime(Date.now() + 20_000)
    stub.chain.baseFee *= 2n
    const error = await rejectionOf(prepared.authorize())
    expect(error.message).toBe(
      "The payment's fee rose above the 1320 quoted while it waited for approval.",
    )
  })
})

describe('the budget counts amount + fee', () => {
  const price = 100n
  const fee = 20n

  test('a budget of exactly 3 × (price + fee) pays three and refuses the fourth', async () => {
    const server = await serve(
      paywall({ challenge: () => challengeHeader({ amount: String(price) }) }),
    )
    const { provider, calls } = fakeProvider({ fee })
    const asked: PaymentEvent[] = []
    const client = clientFor(server.url, {
      provider,
      budget: 3n * (price + fee),
      onPaymentRequired: (event) => void asked.push(event),
    })
    for (let i = 0; i < 3; i++) expect(await client.request({ method: 'eth_chainId' })).toBe('0x1')
    const error = await rejectionOf(client.request({ method: 'eth_chainId' }))

    expect(error).toBeInstanceOf(PaymentRefusedError)
    const refused = error as PaymentRefusedError
    expect(refused.reason).toBe('budget')
    expect(refused.amount).toBe(price)
    expect(refused.fee).toBe(fee)
    expect(refused.metaMessages).toEqual([
      `Amount: ${price} (base units of ${currency})`,
      `Fee: at most ${fee} (base units of ${currency})`,
      'Limit: 0',
    ])
    expect(asked.map(({ quote }) => [quote.amount, quote.fee])).toEqual([
      [price, fee],
      [price, fee],
      [price, fee],
    ])
    expect(calls.authorized).toHaveLength(3)
    expect(server.paid()).toHaveLength(3)
  })

  test('a budget one below price + fee refuses the first payment', async () => {
    const server = await serve(
      paywall({ challenge: () => challengeHeader({ amount: String(price) }) }),
    )
    const { provider, calls } = fakeProvider({ fee })
    const client = clientFor(server.url, { provider, budget: price + fee - 1n })
    const error = await rejectionOf(client.request({ method: 'eth_chainId' }))
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('budget')
    expect(error.message).toContain(`Limit: ${price + fee - 1n}`)
    expect(calls.authorized).toEqual([])
    expect(server.paid()).toEqual([])
  })

  test('5 concurrent payments under a budget of 2 × (price + fee): exactly two are made', async () => {
    const server = await serve(
      paywall({ challenge: () => challengeHeader({ amount: String(price) }) }),
    )
    const { provider, calls } = fakeProvider({ fee })
    const client = clientFor(server.url, { provider, budget: 2n * (price + fee), batch: false })
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) =>
        client.request({ method: 'eth_getBlockByNumber', params: [`0x${i}`, false] }),
      ),
    )
    expect(results.filter(({ status }) => status === 'fulfilled')).toHaveLength(2)
    const refused = results.flatMap((result) =>
      result.status === 'rejected' ? [result.reason] : [],
    )
    expect(refused).toHaveLength(3)
    for (const error of refused) expect((error as PaymentRefusedError).reason).toBe('budget')
    expect(calls.authorized).toHaveLength(2)
    expect(server.paid()).toHaveLength(2)
  })

  test('maxAmount caps the amount, not the fee', async () => {
    const server = await serve(
      paywall({ challenge: () => challengeHeader({ amount: String(price) }) }),
    )
    const { provider } = fakeProvider({ fee })
    const client = clientFor(server.url, { provider, maxAmount: price })
    expect(await client.request({ method: 'eth_chainId' })).toBe('0x1')
    expect(server.paid()).toHaveLength(1)
  })
})

describe('an access key not known to be provisioned', () => {
  const getKey = toFunctionSelector(getAbiItem({ abi: Abis.accountKeychain, name: 'getKey' }))

  async function unprovisionedKey() {
    const root = Account.fromSecp256k1(generatePrivateKey())
    const privateKey = generatePrivateKey()
    const keyAuthorization = await root.signKeyAuthorization(
      { address: privateKeyToAccount(privateKey).address, type: 'secp256k1' },
      { chainId: 1337n, expiry: Math.floor(Date.now() / 1000) + 3600 },
    )
    return Account.fromSecp256k1(privateKey, { access: root, keyAuthorization })
  }

  test('pays one payment at a time; a waiting payment ends at its abort; the keychain is read once', async () => {
    const key = await unprovisionedKey()
    const stub = stubChainClient()
    const provider = charge({ account: key, client: stub.client })
    const prepare = (id: string, signal = new AbortController().signal) =>
      provider.prepare({ challenge: tempoCharge({}, id), request: paidRequest, signal })

    const keychainReads = () => stub.reads.filter((read) => read === getKey).length
    const first = await prepare('first')
    // This provider's read (viem reads it too when it estimates without eth_fillTransaction).
    expect(keychainReads()).toBeGreaterThanOrEqual(1)

    // The second waits for the first: its caller gives up while it waits.
    const controller = new AbortController()
    const waiting = prepare('second', controller.signal)
    const reason = new Error('caller gave up')
    controller.abort(reason)
    expect(await rejectionOf(waiting)).toBe(reason)

    // The first was rejected: the third waits for nobody now, and attaches the authorization.
    const third = prepare('third')
    await first.rollback()
    const prepared = await third
    // Accepted: the key is provisioned, later payments do not wait; each reads the keychain once,
    // for what the key may spend (revocation, expiry, limits).
    const readsBefore = keychainReads()
    await prepared.commit(
      {
        method: 'tempo',
        reference: '0xabc',
        status: 'success',
        timestamp: new Date().toISOString(),
      },
      { accepted: true },
    )
    const later = await Promise.all([prepare('fourth'), prepare('fifth')])
    expect(later.map(({ quote }) => quote.amount)).toEqual([1_000_000n, 1_000_000n])
    expect(keychainReads()).toBe(readsBefore + 2)
    expect(key.keyAuthorizationManager).toBeDefined()
    expect(
      await key.keyAuthorizationManager!.get({
        address: key.address,
        accessKey: key.accessKeyAddress,
        chainId: 1337,
      }),
    ).toBeUndefined()
  })

  test('recover(keyNotProvisioned) reads the chain: missing there, the authorization is attached again', async () => {
    const key = await unprovisionedKey()
    const stub = stubChainClient()
    const provider = charge({ account: key, client: stub.client })
    const challenge = tempoCharge({})
    expect(
      await provider.recover!({ reason: 'keyNotProvisioned', challenge, problem: undefined }),
    ).toBe(true)
    expect(stub.reads.filter((read) => read === getKey)).toHaveLength(1)
    // A plain local account has no key to provision.
    expect(
      await charge({ account, client: stub.client }).recover!({
        reason: 'keyNotProvisioned',
        challenge,
        problem: undefined,
      }),
    ).toBe(false)
  })
})

describe('a custom provider whose quote lacks a field', () => {
  test('`fee` missing: an InvalidQuoteError naming it, nothing authorized, the payment rolled back', async () => {
    const server = await scriptedServer(serve)
    const { provider, calls } = fakeProvider()
    const withoutFee: PaymentProvider = {
      ...provider,
      async prepare(parameters) {
        const prepared = await provider.prepare(parameters)
        const { fee: _, ...quote } = prepared.quote
        return { ...prepared, quote: quote as typeof prepared.quote }
      },
    }
    const error = await rejectionOf(call(clientFor(server.url, { provider: withoutFee })))
    expect(error).toBeInstanceOf(PaymentFailedError)
    const invalid = (error as PaymentFailedError).walk(
      (cause) => cause instanceof InvalidQuoteError,
    )
    expect(invalid).toBeInstanceOf(InvalidQuoteError)
    expect(invalid).toMatchObject({
      field: 'fee',
      shortMessage:
        "The payment provider's quote has no valid `fee`: a non-negative bigint in base units.",
    })
    expect(calls.authorized).toEqual([])
    expect(calls.rolledBack).toHaveLength(1)
  })
})
