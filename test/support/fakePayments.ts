import { Challenge, Credential, Receipt } from 'mppx'
import { defineChain } from 'viem'
import type { PaymentProvider, RecoverParameters } from '../../src/index.js'

/** The chain of the clients in unit tests; challenges for other chains are passed over. */
export const fakeChain = defineChain({
  id: 1337,
  name: 'Fake',
  nativeCurrency: { name: 'USD', symbol: 'USD', decimals: 6 },
  rpcUrls: { default: { http: [] } },
})

export const currency = '0x20c0000000000000000000000000000000000000'
export const recipient = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8'

let nextId = 0

/** A `WWW-Authenticate` value for one challenge of the fake `test` method. */
export function challengeHeader({
  id = `challenge-${++nextId}`,
  method = 'test',
  intent = 'charge',
  amount = '100',
  chainId,
  expires = new Date(Date.now() + 60_000),
}: {
  id?: string
  method?: string
  intent?: string
  amount?: string
  chainId?: number
  expires?: Date | undefined
} = {}) {
  return Challenge.serialize(
    Challenge.from({
      id,
      realm: 'fake',
      method,
      intent,
      request: {
        amount,
        currency,
        recipient,
        ...(chainId === undefined ? {} : { methodDetails: { chainId } }),
      },
      ...(expires ? { expires: expires.toISOString() } : {}),
    }),
  )
}

/** A `Payment-Receipt` value. */
export function receiptHeader(reference = '0xabc') {
  return Receipt.serialize(
    Receipt.from({
      method: 'test',
      reference,
      status: 'success',
      timestamp: new Date().toISOString(),
    }),
  )
}

/**
 * A custom provider for the fake `test` method, written against the public interface only. It
 * records every call so that tests can assert what was signed, committed and rolled back.
 */
export function fakeProvider({
  method = 'test',
  recover = false,
  acceptPayment,
  bearer,
  failIn,
  select,
}: {
  method?: string
  recover?: boolean | ((parameters: RecoverParameters) => boolean)
  acceptPayment?: string
  /** Whether its credentials are bearer payments. */
  bearer?: boolean
  /** A hook that throws. */
  failIn?: 'authorize' | 'commit' | 'rollback' | 'recover'
  select?: PaymentProvider['select']
} = {}) {
  const calls = {
    prepared: [] as string[],
    authorized: [] as string[],
    committed: [] as string[],
    rolledBack: [] as string[],
    recovered: [] as RecoverParameters['reason'][],
  }
  const failing = (hook: typeof failIn) => {
    if (failIn === hook) throw new Error(`${hook} failed at https://provider.test/secret-path`)
  }
  const provider: PaymentProvider = {
    acceptPayment,
    select,
    supports: (challenge) => challenge.method === method,
    async prepare({ challenge }) {
      calls.prepared.push(challenge.id)
      const request = challenge.request as { amount: string }
      return {
        quote: {
          method: challenge.method,
          intent: challenge.intent,
          amount: BigInt(request.amount),
          deposit: 0n,
          currency,
          recipient,
        },
        bearer,
        async authorize() {
          failing('authorize')
          calls.authorized.push(challenge.id)
          return Credential.serialize({ challenge, payload: { proof: `paid-${challenge.id}` } })
        },
        async commit() {
          calls.committed.push(challenge.id)
          failing('commit')
        },
        async rollback() {
          calls.rolledBack.push(challenge.id)
          failing('rollback')
        },
      }
    },
    async recover(parameters) {
      calls.recovered.push(parameters.reason)
      failing('recover')
      return typeof recover === 'function' ? recover(parameters) : recover
    },
  }
  return { provider, calls }
}

/** The challenge id a credential was made for. */
export function paidChallengeId(authorization: string | undefined) {
  return authorization ? Credential.deserialize(authorization).challenge.id : undefined
}
