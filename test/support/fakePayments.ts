import { Challenge, Credential, Receipt } from 'mppx'
import { createClient, custom, defineChain, type Hex, numberToHex, toFunctionSelector } from 'viem'
import { tempoLocalnet } from 'viem/chains'
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
  fee = 0n,
  failIn,
  select,
  reuse = false,
  feePaid,
}: {
  method?: string
  recover?: boolean | ((parameters: RecoverParameters) => boolean)
  acceptPayment?: string
  /** Whether its credentials are bearer payments. */
  bearer?: boolean
  /** The most fee its quotes name. */
  fee?: bigint
  /** A hook that throws. */
  failIn?: 'authorize' | 'commit' | 'rollback' | 'recover'
  select?: PaymentProvider['select']
  /**
   * Whether it has `challengeFor`, which offers the last challenge the server accepted (with a
   * receipt) while it is more than 5 s from expiring, as a session does.
   */
  reuse?: boolean
  /** What its payments' `feePaid` says they really cost (none: it has no `feePaid`). */
  feePaid?: () => Promise<bigint | undefined>
} = {}) {
  const calls = {
    prepared: [] as string[],
    authorized: [] as string[],
    committed: [] as string[],
    rolledBack: [] as string[],
    recovered: [] as RecoverParameters['reason'][],
    /** What each `challengeFor` call returned: a challenge id, or undefined. */
    presented: [] as (string | undefined)[],
  }
  let accepted: Challenge.Challenge | undefined
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
          fee,
          currency,
          recipient,
          transfers: [{ recipient, amount: BigInt(request.amount) }],
        },
        bearer,
        ...(feePaid ? { feePaid } : {}),
        async authorize() {
          failing('authorize')
          calls.authorized.push(challenge.id)
          return Credential.serialize({ challenge, payload: { proof: `paid-${challenge.id}` } })
        },
        async commit(receipt) {
          calls.committed.push(challenge.id)
          if (receipt) accepted = challenge
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
  if (reuse)
    provider.challengeFor = () => {
      const expires = accepted?.expires ? Date.parse(accepted.expires) : Number.POSITIVE_INFINITY
      const challenge = expires > Date.now() + 5_000 ? accepted : undefined
      calls.presented.push(challenge?.id)
      return challenge
    }
  return { provider, calls }
}

/** The challenge id a credential was made for. */
export function paidChallengeId(authorization: string | undefined) {
  return authorization ? Credential.deserialize(authorization).challenge.id : undefined
}

const userTokensSelector = toFunctionSelector('userTokens(address)')
const balanceOfSelector = toFunctionSelector('balanceOf(address)')

/**
 * A viem client for a fake Tempo chain (id 1337) that answers what `charge()` reads while it
 * prepares a payment: no fee-token preference, a balance of `balance` for every token, no access
 * key registered, a gas estimate of `gas` and a base fee of `baseFee` (viem's fee cap is then
 * 1.2 × `baseFee`). It has no `eth_fillTransaction`, so viem estimates. It records each method,
 * and the function selector of each `eth_call`; a test may change `chain` as it goes.
 */
export function stubChainClient({
  balance = 10n ** 12n,
  gas = 50_000n,
  baseFee = 20_000_000_000n,
}: {
  balance?: bigint
  gas?: bigint
  baseFee?: bigint
} = {}) {
  const chain = { balance, gas, baseFee }
  const methods: string[] = []
  const reads: Hex[] = []
  const word = (value: bigint) => numberToHex(value, { size: 32 })
  const client = createClient({
    chain: tempoLocalnet,
    transport: custom({
      async request({ method, params }) {
        methods.push(method)
        switch (method) {
          case 'eth_chainId':
            return numberToHex(tempoLocalnet.id)
          case 'eth_call': {
            const [{ data }] = params as [{ data: Hex }]
            reads.push(data.slice(0, 10) as Hex)
            if (data.startsWith(userTokensSelector)) return word(0n)
            if (data.startsWith(balanceOfSelector)) return word(chain.balance)
            // The keychain's key metadata: all zero, no such key.
            return `0x${'00'.repeat(32 * 8)}`
          }
          case 'eth_estimateGas':
            return numberToHex(chain.gas)
          case 'eth_maxPriorityFeePerGas':
            return '0x0'
          case 'eth_getBlockByNumber':
            return {
              baseFeePerGas: numberToHex(chain.baseFee),
              number: '0x1',
              hash: `0x${'11'.repeat(32)}`,
              timestamp: numberToHex(Math.floor(Date.now() / 1000)),
              transactions: [],
            }
          default:
            throw Object.assign(new Error(`${method} is not answered here`), { code: -32601 })
        }
      },
    }),
  })
  return { client, methods, reads, chain }
}
