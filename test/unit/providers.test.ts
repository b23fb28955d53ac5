import { Challenge } from 'mppx'
import { createClient, defineChain, fallback, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { describe, expect, test } from 'vitest'
import { charge, mppHttp, multi } from '../../src/index.js'
import { currency, fakeProvider, recipient, stubChainClient } from '../support/fakePayments.js'

const chain = defineChain({
  id: 1337,
  name: 'Fake',
  nativeCurrency: { name: 'USD', symbol: 'USD', decimals: 6 },
  rpcUrls: { default: { http: ['http://127.0.0.1:1'] } },
})
const account = privateKeyToAccount(
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
)
const chainClient = createClient({ chain, transport: http() })

function tempoCharge(request: Record<string, unknown>, intent = 'charge') {
  return Challenge.from({
    id: 'c',
    realm: 'r',
    method: 'tempo',
    intent,
    request: { amount: '1000', currency, recipient, ...request },
  })
}

describe('charge()', () => {
  test.each([
    ['a paid transport', mppHttp('http://127.0.0.1:1')],
    ['a paid transport inside fallback()', fallback([mppHttp('http://127.0.0.1:1'), http()])],
  ])('refuses a chain client on %s', (_, transport) => {
    const client = createClient({ chain, transport })
    expect(() => charge({ account, client })).toThrow('must not use a paid (mppHttp) transport')
  })

  test.each([
    [
      'a Tempo charge on the client’s chain',
      tempoCharge({ methodDetails: { chainId: 1337 } }),
      true,
    ],
    ['a Tempo charge with no chain id', tempoCharge({}), true],
    [
      'a Tempo charge that allows pull mode',
      tempoCharge({ methodDetails: { supportedModes: ['push', 'pull'] } }),
      true,
    ],
    ['a Tempo charge on another chain', tempoCharge({ methodDetails: { chainId: 4217 } }), false],
    [
      'a push-only Tempo charge',
      tempoCharge({ methodDetails: { supportedModes: ['push'] } }),
      false,
    ],
    ['a Tempo session', tempoCharge({}, 'session'), false],
    ['a negative amount', tempoCharge({ amount: '-1' }), false],
    ['a recipient that is not an address', tempoCharge({ recipient: 'acct_123' }), false],
  ])('supports %s: %s', (_, challenge, supported) => {
    expect(charge({ account, client: chainClient }).supports(challenge)).toBe(supported)
  })

  test('quotes the decoded amount, currency and recipient, signing nothing', async () => {
    const { client } = stubChainClient({ gas: 50_000n, baseFee: 20_000_000_000n })
    const prepared = await charge({ account, client }).prepare({
      challenge: tempoCharge({ methodDetails: { chainId: 1337 } }),
      request: { url: 'http://x', method: 'POST', headers: new Headers(), body: '{}' },
      signal: new AbortController().signal,
    })
    expect(prepared.quote).toEqual({
      method: 'tempo',
      intent: 'charge',
      amount: 1000n,
      deposit: 0n,
      // (50,000 + 5,000 gas) × 1.2 × 20 gwei, in USD per 10^18 gas.
      fee: 1320n,
      feeToken: currency,
      currency,
      recipient,
      transfers: [{ recipient, amount: 1000n, memo: expect.any(String) }],
      chainId: 1337,
    })
  })
})

describe('multi()', () => {
  const challenge = (method: string) =>
    Challenge.from({ id: method, realm: 'r', method, intent: 'charge', request: { amount: '1' } })

  test('the first provider that supports a challenge pays it', async () => {
    const a = fakeProvider({ method: 'a' })
    const b = fakeProvider({ method: 'b' })
    const both = multi([a.provider, b.provider])
    expect(both.supports(challenge('b'))).toBe(true)
    expect(both.supports(challenge('c'))).toBe(false)
    await both.prepare({
      challenge: challenge('b'),
      request: { url: 'http://x', method: 'POST', headers: new Headers(), body: '{}' },
      signal: new AbortController().signal,
    })
    expect(a.calls.prepared).toEqual([])
    expect(b.calls.prepared).toEqual(['b'])
  })

  test('the provider that chose a challenge pays it, even if an earlier one supports it', async () => {
    // `a` supports both methods but only accepts its own; `b` takes `b`.
    const a = fakeProvider({ method: 'b', acceptPayment: 'a/charge' })
    const b = fakeProvider({ method: 'b' })
    const both = multi([a.provider, b.provider])
    const chosen = both.select?.([challenge('b')])
    expect(chosen?.id).toBe('b')
    await both.prepare({
      challenge: chosen!,
      request: { url: 'http://x', method: 'POST', headers: new Headers(), body: '{}' },
      signal: new AbortController().signal,
    })
    expect(a.calls.prepared).toEqual([])
    expect(b.calls.prepared).toEqual(['b'])
  })

  test('among several challenges, the first provider’s choice wins', () => {
    const both = multi([
      fakeProvider({ method: 'a' }).provider,
      fakeProvider({ method: 'b' }).provider,
    ])
    expect(both.select?.([challenge('b'), challenge('a')])?.method).toBe('a')
  })
})
