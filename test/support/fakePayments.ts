import { Challenge, Credential, Receipt } from 'mppx'
import type { PaymentProvider, RecoverParameters } from '../../src/index.js'

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
}: {
  method?: string
  recover?: boolean | ((parameters: RecoverParameters) => boolean)
  acceptPayment?: string
} = {}) {
  const calls = {
    prepared: [] as string[],
    authorized: [] as string[],
    committed: [] as string[],
    rolledBack: [] as string[],
    recovered: [] as RecoverParameters['reason'][],
  }
  const provider: PaymentProvider = {
    acceptPayment,
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
        async authorize() {
          calls.authorized.push(challenge.id)
          return Credential.serialize({ challenge, payload: { proof: `paid-${challenge.id}` } })
        },
        async commit() {
          calls.committed.push(challenge.id)
        },
        async rollback() {
          calls.rolledBack.push(challenge.id)
        },
      }
    },
    async recover(parameters) {
      calls.recovered.push(parameters.reason)
      return typeof recover === 'function' ? recover(parameters) : recover
    },
  }
  return { provider, calls }
}

/** The challenge id a credential was made for. */
export function paidChallengeId(authorization: string | undefined) {
  return authorization ? Credential.deserialize(authorization).challenge.id : undefined
}
