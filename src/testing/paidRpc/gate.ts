/**
 * The paid RPC's payment gate: mppx's Tempo methods (charge, TIP-1034 session) composed into one
 * check that a request is paid, the same over HTTP and in-band.
 */
import { Mppx, type Store, tempo } from 'mppx/server'
import {
  type Address,
  type Chain,
  type Client,
  formatUnits,
  type LocalAccount,
  type Transport,
} from 'viem'
import type { PaidRpcCounters } from './counters.js'
import type { inBandAnswerer } from './inband.js'

export type PaidRpcIntent = 'charge' | 'session'

/** mppx's composed gate, as the answerers call it: a request in, its 402 or its receipt out. */
export type PaymentGate = Parameters<typeof inBandAnswerer>[0]['gate']

/** mppx's Tempo server methods, by the intent each offers. */
export type TempoMethods = {
  charge: ReturnType<typeof tempo.charge>
  session: ReturnType<typeof tempo.session>
}

export type TempoMethodsConfig = {
  /** TIP-20 currency. */
  currency: Address
  /** Decimals of `currency`. */
  decimals: number
  /** The payee's client: receives charges, and signs session settle/close transactions. */
  client: Client<Transport, Chain, LocalAccount>
  /** Where the session method keeps its channels. */
  channels: Store.AtomicStore
  /** The deposit suggested to session clients, in base units. */
  suggestedDeposit: bigint
}

/**
 * The Tempo payment methods the server can offer, by intent, all paying the client's account:
 * built once, whichever of them a server then offers.
 *
 * @example
 * ```ts
 * const methods = tempoMethods({ currency, decimals: 6, client, channels, suggestedDeposit })
 * ```
 */
export function tempoMethods({
  currency,
  decimals,
  client,
  channels,
  suggestedDeposit,
}: TempoMethodsConfig): TempoMethods {
  const payee = client.account
  const getClient = () => client
  return {
    charge: tempo.charge({ currency, decimals, recipient: payee.address, getClient }),
    session: tempo.session({
      currency,
      decimals,
      account: payee,
      getClient,
      store: channels,
      unitType: 'request',
      suggestedDeposit: formatUnits(suggestedDeposit, decimals),
      // A client naming its channel (`Payment-Session`) gets the channel's snapshot in the 402:
      // the highest voucher held, signed by its signer, to continue from after a crash.
      resolveChannelId: ({ request }) => request?.headers.get('payment-session'),
    }),
  }
}

export type PaymentGateConfig = {
  /** The methods to offer from, by intent (`tempoMethods`). */
  methods: TempoMethods
  /** The intents offered in each 402, in order of preference. */
  intents: readonly PaidRpcIntent[]
  /** Price of one request, in the currency's units (decimal text, as mppx takes it). */
  amount: string
  /** HMAC secret for stateless challenge verification. */
  secretKey: string
  /** Realm named in challenges. */
  realm: string
  /** Counts each accepted payment by kind. */
  counters: PaidRpcCounters
}

/**
 * The gate every paid request goes through: one mppx server offering `intents`, whose accepted
 * payments are counted in `counters` for tests to assert against.
 *
 * @example
 * ```ts
 * const gate = paymentGate({ methods, intents: ['session'], amount: '0.001', secretKey, realm, counters })
 * const result = await gate(request)
 * if (result.status === 402) return result.challenge
 * ```
 */
export function paymentGate({
  methods,
  intents,
  amount,
  secretKey,
  realm,
  counters,
}: PaymentGateConfig): PaymentGate {
  const mppx = Mppx.create({
    secretKey,
    realm,
    methods: intents.map((name) => methods[name]),
  })
  const gate = mppx.compose(...(intents.map((name) => [`tempo/${name}`, { amount }]) as never[]))
  mppx.onPaymentSuccess(({ credential, method }) => {
    if (method.intent === 'charge') counters.payments.charge++
    else {
      const action = (credential?.payload as { action?: string } | undefined)?.action
      if (action && action in counters.payments) counters.payments[action as 'open']++
    }
  })
  return gate
}
