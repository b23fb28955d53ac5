import { type Challenge, Credential } from 'mppx'
import { Proof } from 'mppx/tempo'
import {
  type Account,
  type Address,
  type Chain,
  type Client,
  type Hash,
  keccak256,
  type Transport,
} from 'viem'
import { prepareTransactionRequest, signTransaction, signTypedData } from 'viem/actions'
import { Actions, TokenId } from 'viem/tempo'
import { maxFeeOf, paidFeeOf } from '../internal/fees.js'
import { isPaidClient } from '../internal/paidTransportMarker.js'
import { nowInSeconds, transactionLifetime } from '../internal/time.js'
import type { ChainClient } from '../reserve/transactions.js'
import { prepareAffordable } from './affordable.js'
import { type ChargeRequest, parseChargeRequest, transfersOf } from './charge/request.js'
import type { KeyCall } from './keyScopes.js'
import type { PaymentProvider, PaymentQuote, PreparedPayment } from './PaymentProvider.js'
import { type Payer, payerOf } from './payer.js'

/** mppx's pull-mode client adds this much gas for the sender's signature and key checks. */
const signatureGas = 5_000n

export type ChargeParameters = {
  /** Pays: a local account, or a `viem/tempo` access-key account. */
  account: Account
  /**
   * A viem client for the chain, used to prepare the payment transaction. It must not use the
   * paid transport itself.
   */
  client: Client<Transport, Chain>
}

/**
 * Pays Tempo `charge` challenges: the TIP-20 transfers of the charge (its splits included) in one
 * transaction, signed here and broadcast by the server (pull mode), so that nothing moves unless
 * the server accepts the credential.
 *
 * The transaction is prepared before anything is signed, so its quote shows every transfer and
 * the most its fee can cost (`gas × maxFeePerGas`, in the fee token), and a payer who cannot
 * afford both is refused (`PaymentRefusedError`, reason `insufficientFunds`).
 *
 * An access key is checked against the chain before anything is signed: its expiry, spending
 * limits (fees included) and call scopes. Its key authorization is attached only while the
 * keychain lacks the key, one payment at a time until one provisions it; see `accessKey.ts`.
 *
 * @example
 * ```ts
 * import { createPublicClient, http } from 'viem'
 * import { privateKeyToAccount } from 'viem/accounts'
 * import { tempo } from 'viem/chains'
 * import { charge, mppHttp } from 'viem-mpp'
 *
 * const account = privateKeyToAccount(process.env.TEMPO_PRIVATE_KEY as `0x${string}`)
 * const chainClient = createPublicClient({ chain: tempo, transport: http() })
 * const client = createPublicClient({
 *   chain: tempo,
 *   transport: mppHttp('https://rpc.example.com', {
 *     provider: charge({ account, client: chainClient }),
 *   }),
 * })
 * ```
 */
export function charge({ account, client }: ChargeParameters): PaymentProvider {
  if (isPaidClient(client))
    throw new Error('charge(): `client` must not use a paid (mppHttp) transport.')
  const chainId = client.chain.id
  const payer = payerOf(account, chainId)
  return {
    acceptPayment: 'tempo/charge',
    supports: (challenge) => parseChargeRequest(challenge, chainId).request !== undefined,
    unsupportedReason: (challenge) => parseChargeRequest(challenge, chainId).reason,
    async prepare({ challenge, signal }) {
      const { request } = parseChargeRequest(challenge, chainId)
      if (!request) throw new Error(`Not a Tempo charge challenge on chain ${chainId}.`)
      const quote = {
        method: 'tempo',
        intent: 'charge',
        amount: request.amount,
        deposit: 0n,
        currency: request.currency,
        recipient: request.recipient,
        transfers: transfersOf(challenge, request),
        chainId,
      }
      // A zero-amount charge is a signed proof of the payer, not a transaction.
      if (request.amount === 0n) return proofPayment(client, payer, { challenge, quote })
      return transferPayment(client, payer, { challenge, request, quote, signal })
    },
    async recover({ reason }) {
      // Only a key the chain really lacks is authorized again: re-authorizing a registered key
      // fails on chain (`KeyAlreadyExists`).
      if (reason !== 'keyNotProvisioned' || !payer.key) return false
      return payer.key.recover(client)
    },
  }
}

/** A charge's quote before its fee is known. */
type ChargeQuote = Omit<PaymentQuote, 'fee' | 'feeToken'>

/** Pays a zero-amount charge with a signed proof of the payer (no transaction, no fee). */
function proofPayment(
  client: ChainClient,
  payer: Payer,
  { challenge, quote }: { challenge: Challenge.Challenge; quote: ChargeQuote },
): PreparedPayment {
  return {
    quote: { ...quote, fee: 0n },
    authorize: async () =>
      Credential.serialize({
        challenge,
        payload: {
          signature: await signTypedData(client, {
            account: payer.account,
            ...Proof.typedData({
              account: payer.address,
              chainId: client.chain.id,
              challengeId: challenge.id,
              realm: challenge.realm,
            }),
          }),
          type: 'proof',
        },
        source: payer.source,
      }),
    commit: async () => {},
    rollback: async () => {},
  }
}

/**
 * Pays a charge with its transfers in one transaction, prepared and checked affordable before
 * anything is signed, and signed once approved (pull mode: the server broadcasts it).
 */
async function transferPayment(
  client: ChainClient,
  payer: Payer,
  {
    challenge,
    request,
    quote,
    signal,
  }: {
    challenge: Challenge.Challenge
    request: ChargeRequest
    quote: ChargeQuote
    signal: AbortSignal
  },
): Promise<PreparedPayment> {
  const expires = challenge.expires
    ? Math.floor(new Date(challenge.expires).getTime() / 1000)
    : Number.POSITIVE_INFINITY
  const calls = quote.transfers.map(({ recipient, amount, memo }) => {
    const { to, data } = Actions.token.transfer.call(client, {
      to: recipient,
      amount,
      token: request.currency,
      ...(memo ? { memo } : {}),
    })
    return { to, data }
  })
  const affordable = await prepareAffordable(client, payer, {
    prepare: (account) =>
      prepareTransfers(client, { account, wallet: payer.account, request, calls, expires }),
    spend: { token: request.currency, spends: request.amount, amount: request.amount, calls },
    expires,
    signal,
  })
  const { fee, feeToken, turn } = affordable
  /** The hash of the transaction signed, once it is. */
  let signed: Hash | undefined
  return {
    quote: { ...quote, fee, ...(feeToken ? { feeToken } : {}) },
    async authorize() {
      const { transaction } = await affordable.ready()
      const signature = await signTransaction(client, transaction as never)
      signed = keccak256(signature)
      return Credential.serialize({
        challenge,
        payload: { signature, type: 'transaction' },
        source: payer.source,
      })
    },
    // A signed transfer can be broadcast by whoever holds it until it expires.
    bearer: true,
    // The server broadcasts the transaction as signed (a sponsored one, co-signed, costs the
    // payer no fee): the chain tells its fee by its hash.
    feePaid: async () => (signed ? paidFeeOf(client, signed) : undefined),
    async commit(receipt) {
      // An accepted payment carrying the authorization provisioned the key. Accepted with no
      // receipt, or outcome unknown: the chain is asked again next time.
      if (turn) {
        if (receipt) await turn.provisioned()
        else turn.unknown()
        turn.end()
      }
    },
    async rollback() {
      turn?.end()
    },
  }
}

/**
 * The transaction making `calls` (the charge's transfers) as `account` (which carries the key
 * authorization to attach, see `withKeyAuthorization`), valid until `expires` at the latest
 * (unix seconds), with its most fee; ready to sign.
 */
async function prepareTransfers(
  client: ChainClient,
  {
    account,
    wallet,
    request,
    calls,
    expires,
  }: {
    account: Account
    /** The payer's own account, whose preferred fee token is asked. */
    wallet: Account
    request: ChargeRequest
    calls: readonly KeyCall[]
    expires: number
  },
) {
  const sponsored = request.methodDetails?.feePayer === true
  const { feeToken: chainFeeToken } = client.chain as { feeToken?: TokenId.TokenIdOrAddress }
  // Unsponsored, the payer names its fee token (as the spec asks): the chain's, else the payer's
  // own preference, else the charge's currency (Tempo's own default for a transfer).
  const feeToken = sponsored
    ? undefined
    : ((chainFeeToken === undefined ? undefined : TokenId.toAddress(chainFeeToken)) ??
      (await Actions.fee.getUserToken(client, { account: wallet }))?.address ??
      request.currency)
  const transaction = (await prepareTransactionRequest(client, {
    account,
    calls,
    ...(feeToken ? { feeToken } : {}),
    nonceKey: 'expiring',
    validBefore: Math.min(nowInSeconds() + transactionLifetime, expires),
  } as never)) as unknown as PreparedTransaction
  // As mppx: the estimate does not cover the real signature (keychain, fee payer).
  transaction.gas = (transaction.gas ?? 0n) + signatureGas
  if (sponsored) {
    // As mppx: the server co-signs and pays; the sender signs without a fee token.
    delete transaction.feePayerSignature
    delete transaction.feeToken
    transaction.feePayer = true
  }
  const fee = sponsored ? 0n : maxFeeOf(transaction)
  return { transaction, fee, feeToken }
}

type PreparedTransaction = {
  gas?: bigint
  maxFeePerGas?: bigint
  gasPrice?: bigint
  validBefore?: number
  feeToken?: Address
  feePayer?: boolean
  feePayerSignature?: unknown
}
