/**
 * Everything the client reads from a server, random and mutated (fast-check): challenges
 * (`WWW-Authenticate`), problem details, receipts, session requests and session snapshots.
 * Whatever arrives, a call ends within its deadline, with its result or a typed error, and
 * nothing is paid that the spending policy did not approve; a session's ledger is never raised
 * by what a server says.
 */

import fc from 'fast-check'
import { Challenge } from 'mppx'
import { Session } from 'mppx/tempo'
import { createClient, type Hex, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { tempoLocalnet } from 'viem/chains'
import { Addresses } from 'viem/tempo'
import { describe, expect, test } from 'vitest'
import { BaseError } from '../../src/errors.js'
import { charge, mppHttp, type PreparedPayment } from '../../src/index.js'
import { maxOf } from '../../src/internal/bigint.js'
import { Ledger } from '../../src/providers/session/ledger.js'
import { receiptPosition, serverPosition } from '../../src/providers/session/snapshot.js'
import { parseSessionRequest } from '../../src/reserve/sessionRequest.js'
import { signVoucher } from '../../src/reserve/transactions.js'
import type { ChannelEntry } from '../../src/stores/ChannelStore.js'
import {
  challengeHeader,
  currency,
  fakeChain,
  fakeProvider,
  receiptHeader,
  recipient,
  stubChainClient,
} from '../support/fakePayments.js'
import { rpcResult } from '../support/fakeServer.js'

/** A string changed at a few random places: characters replaced, inserted or cut. */
const mutated = (source: fc.Arbitrary<string>) =>
  fc
    .tuple(
      source,
      fc.array(
        fc.record({
          at: fc.nat(),
          kind: fc.constantFrom('replace', 'insert', 'cut'),
          text: fc.string({ maxLength: 4 }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    )
    .map(([text, edits]) =>
      edits.reduce((value, { at, kind, text: insert }) => {
        const index = value.length === 0 ? 0 : at % value.length
        if (kind === 'cut') return value.slice(0, index) + value.slice(index + 1)
        if (kind === 'insert') return value.slice(0, index) + insert + value.slice(index)
        return value.slice(0, index) + insert + value.slice(index + 1)
      }, text),
    )

/** Amounts as a server may write them: plausible, huge, negative, fractional, or not numbers. */
const amountText = fc.oneof(
  { weight: 4, arbitrary: fc.bigInt({ min: 0n, max: 2000n }).map(String) },
  fc.bigInt({ min: 0n, max: 2n ** 300n }).map(String),
  fc.constantFrom('-1', '1.5', '1e3', '0x10', '', ' 100', 'NaN'),
  fc.string({ maxLength: 8 }),
)

const validChallenge = fc
  .record({
    amount: amountText,
    method: fc.constantFrom('test', 'test', 'test', 'tempo', 'other'),
    intent: fc.constantFrom('charge', 'charge', 'session', 'x'),
    expiresIn: fc.integer({ min: -120_000, max: 600_000 }),
  })
  .map(({ amount, method, intent, expiresIn }) =>
    challengeHeader({ amount, method, intent, expires: new Date(Date.now() + expiresIn) }),
  )

/** `WWW-Authenticate` values: well formed with odd amounts, mutated, many at once, or noise. */
const challengeValue = fc.oneof(
  { weight: 6, arbitrary: validChallenge },
  { weight: 2, arbitrary: mutated(validChallenge) },
  {
    weight: 1,
    arbitrary: fc
      .array(validChallenge, { minLength: 2, maxLength: 200 })
      .map((all) => all.join(', ')),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.constant('') },
)

/** Problem details bodies: the known types with any detail, other JSON, or noise. */
const problemBody = fc.oneof(
  fc
    .record({
      type: fc.oneof(
        fc
          .constantFrom(
            'verification-failed',
            'payment-expired',
            'invalid-challenge',
            'session/channel-not-found',
            'session/insufficient-balance',
            'session/amount-exceeds-deposit',
            'stale-voucher',
            'key-not-provisioned',
          )
          .map((type) => `https://paymentauth.org/problems/${type}`),
        fc.string(),
      ),
      detail: fc.oneof(fc.string(), fc.constant('access key does not exist')),
      status: fc.integer(),
    })
    .map((problem) => JSON.stringify(problem)),
  fc.json(),
  fc.string({ maxLength: 200 }),
)

/** `Payment-Receipt` values: well formed, mutated, base64 of any JSON, or noise. */
const receiptValue = fc.oneof(
  fc.constant(receiptHeader()),
  mutated(fc.constant(receiptHeader())),
  fc.json().map((json) => Buffer.from(json).toString('base64url')),
  fc.string({ maxLength: 100 }),
)

/** What the server answers a paid request. */
const paidAnswer = fc.record({
  status: fc.constantFrom(200, 200, 402, 402, 410, 500, 502),
  challenge: challengeValue,
  problem: problemBody,
  receipt: fc.option(receiptValue, { nil: undefined }),
})

/** Header values cannot hold every character: the server's noise is made sendable, not dropped. */
const headerSafe = (value: string) => value.replace(/[^\t\x20-\x7e]/g, '?')

describe('the payment flow, whatever the server sends', () => {
  test('every call ends in time, with a result or a typed error; only approved payments are made, at most three per call', async () => {
    /** How the runs ended: that the inputs reach every path, not only the parsers' refusals. */
    const seen = { paid: 0, refused: 0, ok: 0, failed: 0 }
    await fc.assert(
      fc.asyncProperty(
        challengeValue,
        problemBody,
        fc.array(paidAnswer, { maxLength: 4 }),
        fc.boolean(),
        async (firstChallenge, firstProblem, answers, recovers) => {
          const { provider, calls } = fakeProvider({ recover: recovers })
          const approved = new Map<string, bigint>()
          let paidRequests = 0
          const fetchFn = async (_input: unknown, init?: RequestInit) => {
            const paid = new Headers(init?.headers).has('authorization')
            const answer = paid ? answers[paidRequests++] : undefined
            if (paid && (!answer || answer.status === 200))
              return new Response(rpcResult(String(init?.body)), {
                status: 200,
                headers: {
                  'content-type': 'application/json',
                  ...(answer?.receipt ? { 'payment-receipt': headerSafe(answer.receipt) } : {}),
                },
              })
            return new Response(answer?.problem ?? firstProblem, {
              status: answer?.status ?? 402,
              headers: {
                'content-type': 'application/problem+json',
                'www-authenticate': headerSafe(answer?.challenge ?? firstChallenge),
              },
            })
          }
          const client = createClient({
            chain: fakeChain,
            transport: mppHttp('https://paid.example/rpc', {
              provider,
              fetchFn,
              retryCount: 0,
              paymentTimeout: 2_000,
              maxAmount: 1800n,
              onPaymentRequired: ({ challenge, quote }) => {
                if (quote.amount > 1500n) return false
                approved.set(challenge.id, quote.amount)
                return true
              },
            }),
          })
          const outcome = await Promise.race([
            client.request({ method: 'eth_blockNumber' }).then(
              () => 'ok',
              (error: unknown) => error,
            ),
            new Promise((resolve) => setTimeout(() => resolve('hung'), 5_000)),
          ])
          expect(outcome).not.toBe('hung')
          if (calls.authorized.length > 0) seen.paid++
          if (calls.prepared.length > calls.authorized.length) seen.refused++
          if (outcome === 'ok') seen.ok++
          else seen.failed++
          if (outcome !== 'ok') {
            expect(outcome).toBeInstanceOf(BaseError)
            expect((outcome as BaseError).name).not.toBe('BaseError')
          }
          // Nothing signed that the policy did not approve, within maxAmount, three at most.
          expect(calls.authorized.length).toBeLessThanOrEqual(3)
          for (const id of calls.authorized) {
            expect(approved.has(id)).toBe(true)
            expect(approved.get(id)!).toBeLessThanOrEqual(1500n)
          }
          // Every credential signed was sent, once.
          expect(paidRequests).toBe(calls.authorized.length)
        },
      ),
      { numRuns: 1000 },
    )
    console.log(`[server input] 1000 runs: ${JSON.stringify(seen)}`)
    for (const count of Object.values(seen)) expect(count).toBeGreaterThan(30)
  })
})

const chainId = tempoLocalnet.id

/** A valid TIP-1034 session request, as a server's challenge carries it. */
const sessionRequest = {
  amount: '1000',
  currency,
  recipient,
  suggestedDeposit: '1000000',
  methodDetails: {
    chainId,
    escrowContract: Addresses.tip20ChannelReserve,
    sessionProtocol: 'v2',
  },
}

/** A JSON value like `value`, with one field at some path replaced by `replacement`. */
function replaced(value: unknown, path: readonly number[], replacement: unknown): unknown {
  if (path.length === 0 || value === null || typeof value !== 'object') return replacement
  const keys = Object.keys(value)
  if (keys.length === 0) return replacement
  const key = keys[path[0]! % keys.length]!
  return {
    ...value,
    [key]: replaced((value as Record<string, unknown>)[key], path.slice(1), replacement),
  }
}

const anyJson = fc.oneof(fc.jsonValue(), amountText, fc.constant(undefined))
const path = fc.array(fc.nat(), { minLength: 1, maxLength: 3 })

describe('a session request, whatever its fields', () => {
  test('is decoded only when every field holds: a price above zero within uint96, the client chain, the canonical reserve', () => {
    fc.assert(
      fc.property(path, anyJson, (at, value) => {
        const request = replaced(sessionRequest, at, value) as Record<string, unknown>
        const challenge = Challenge.from({
          id: 'x',
          realm: 'fake',
          method: 'tempo',
          intent: 'session',
          request,
        } as never)
        const { request: decoded, reason } = parseSessionRequest(challenge, chainId)
        if (!decoded) {
          expect(typeof reason).toBe('string')
          return
        }
        expect(decoded.amount).toBeGreaterThan(0n)
        expect(decoded.amount).toBeLessThan(2n ** 96n)
        expect(decoded.chainId).toBe(chainId)
        expect(decoded.escrow.toLowerCase()).toBe(Addresses.tip20ChannelReserve.toLowerCase())
        expect(decoded.amount).toBe(BigInt(String(request.amount)))
      }),
      { numRuns: 500 },
    )
  })
})

/** A channel of a fresh signer, and a snapshot of it with a voucher the signer signed. */
async function channelFixture() {
  const signer = privateKeyToAccount(generatePrivateKey())
  const payee = privateKeyToAccount(generatePrivateKey()).address
  // A local account signs without asking the node.
  const client = createClient({ chain: tempoLocalnet, transport: http('http://127.0.0.1:1') })
  const descriptor = {
    payer: signer.address,
    payee,
    operator: '0x0000000000000000000000000000000000000000',
    token: currency,
    salt: `0x${'11'.repeat(32)}`,
    authorizedSigner: signer.address,
    expiringNonceHash: `0x${'22'.repeat(32)}`,
  } as const
  const channelId = `0x${'33'.repeat(32)}` as Hex
  const entry = {
    channelId,
    escrow: Addresses.tip20ChannelReserve,
    chainId,
    descriptor,
  } as unknown as ChannelEntry
  const held = 7000n
  const signature = await signVoucher(client, signer, entry, held)
  const snapshot = {
    acceptedCumulative: held.toString(),
    spent: '6000',
    chainId,
    channelId,
    escrow: Addresses.tip20ChannelReserve,
    deposit: '1000000',
    settled: '0',
    requiredCumulative: '8000',
    descriptor,
    highestVoucher: { channelId, cumulativeAmount: held.toString(), signature },
  }
  return { signer, entry, channelId, held, signature, snapshot }
}

describe('a Tempo charge request, whatever its fields', () => {
  const chargeRequest = {
    amount: '1000',
    currency,
    recipient,
    methodDetails: {
      chainId: tempoLocalnet.id,
      splits: [{ amount: '100', recipient: recipient, memo: `0x${'ab'.repeat(32)}` }],
    },
  }
  const account = privateKeyToAccount(generatePrivateKey())

  test('is paid only as it reads: the quote is its amount, split as it says, to addresses, in its currency; or it is refused, unsigned', async () => {
    let quoted = 0
    await fc.assert(
      fc.asyncProperty(path, anyJson, async (at, value) => {
        const request = replaced(chargeRequest, at, value) as typeof chargeRequest
        const challenge = Challenge.from({
          id: 'c',
          realm: 'r',
          method: 'tempo',
          intent: 'charge',
          request,
          expires: new Date(Date.now() + 60_000).toISOString(),
        } as never)
        const { client, methods } = stubChainClient()
        const provider = charge({ account, client })
        if (!provider.supports(challenge)) return
        const prepared = await provider
          .prepare({
            challenge,
            request: { url: 'http://x', method: 'POST', headers: new Headers(), body: '{}' },
            signal: new AbortController().signal,
          })
          .catch((error: unknown) => error)
        // Preparing reads and estimates, and sends nothing.
        expect(methods.filter((method) => method.startsWith('eth_send'))).toEqual([])
        if (prepared instanceof Error) return
        const { quote } = prepared as PreparedPayment
        quoted++
        expect(quote.amount).toBe(BigInt(request.amount))
        expect(quote.currency.toLowerCase()).toBe(String(request.currency).toLowerCase())
        expect(quote.transfers.reduce((sum, { amount }) => sum + amount, 0n)).toBe(quote.amount)
        for (const transfer of quote.transfers) {
          expect(transfer.recipient).toMatch(/^0x[0-9a-fA-F]{40}$/)
          expect(transfer.amount).toBeGreaterThanOrEqual(0n)
        }
      }),
      { numRuns: 600 },
    )
    // Most changes leave a payable request (a memo, a split's amount, the chain it names).
    expect(quoted).toBeGreaterThan(30)
  })
})

describe('what a server says of a channel (snapshots and receipts)', () => {
  const fixture = channelFixture()
  const withSnapshot = (sessionSnapshot: unknown) =>
    Challenge.from({
      id: 'x',
      realm: 'fake',
      method: 'tempo',
      intent: 'session',
      request: {
        ...sessionRequest,
        methodDetails: { ...sessionRequest.methodDetails, sessionSnapshot },
      },
    } as never)

  test('a snapshot counts only with the signer’s signature over exactly the amount it claims: any change to what is checked, and it is ignored', async () => {
    const { signer, entry, channelId, held, signature, snapshot } = await fixture
    expect(serverPosition(withSnapshot(snapshot), entry)).toEqual({ held, spent: 6000n })
    fc.assert(
      fc.property(path, anyJson, (at, value) => {
        const changed = replaced(snapshot, at, value)
        const position = serverPosition(withSnapshot(changed), entry)
        if (position === undefined) return
        // Only a change to what is not checked (the deposit, the amount required, `spent`
        // lowered, a case change) leaves the signed voucher's amount standing.
        expect(position.held).toBe(held)
        expect(position.spent).toBeLessThanOrEqual(held)
      }),
      { numRuns: 1000 },
    )
    expect(serverPosition(withSnapshot(mutatedSignature(snapshot)), entry)).toBeUndefined()
    expect(
      Session.Precompile.Voucher.verifyVoucher(
        entry.escrow,
        chainId,
        { channelId, cumulativeAmount: held, signature },
        signer.address,
      ),
    ).toBe(true)
  })

  test('a receipt never raises the ledger: what it spends is lowered at most, its floor is a voucher signed', async () => {
    const { entry, channelId } = await fixture
    fc.assert(
      fc.property(
        fc.record({
          intent: fc.constantFrom('session', 'charge'),
          channelId: fc.constantFrom(channelId, `0x${'44'.repeat(32)}`, 'x'),
          acceptedCumulative: amountText,
          spent: amountText,
        }),
        fc.bigInt({ min: 0n, max: 20_000n }),
        fc.bigInt({ min: 0n, max: 20_000n }),
        (receipt, spent, signed) => {
          const ledger = Ledger.create({ spent, signed, mark: signed })
          const position = receiptPosition(receipt as never, entry)
          if (!position) return
          const after = Ledger.reconcile(ledger, position)
          expect(after.spent).toBeLessThanOrEqual(ledger.spent)
          expect(after.signed).toBe(ledger.signed)
          expect(after.floor).toBeLessThanOrEqual(ledger.signed)
          // The next voucher: at most what it was, or a voucher signed already.
          const before = Ledger.next(ledger, 1000n)
          expect(Ledger.next(after, 1000n)).toBeLessThanOrEqual(maxOf(before, ledger.signed))
        },
      ),
      { numRuns: 1000 },
    )
  })
})

/** The snapshot with its voucher's signature changed in one byte. */
function mutatedSignature(snapshot: { highestVoucher: { signature: Hex } }) {
  const { signature } = snapshot.highestVoucher
  const flipped = `${signature.slice(0, 10)}${signature[10] === 'a' ? 'b' : 'a'}${signature.slice(11)}`
  return { ...snapshot, highestVoucher: { ...snapshot.highestVoucher, signature: flipped } }
}
