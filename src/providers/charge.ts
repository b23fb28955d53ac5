import { type Challenge, Credential } from 'mppx'
import { Proof } from 'mppx/tempo'
import {
  type Account,
  type Address,
  type Chain,
  type Client,
  concat,
  type Hash,
  type Hex,
  keccak256,
  slice,
  stringToHex,
  type Transport,
} from 'viem'
import { prepareTransactionRequest, signTransaction, signTypedData } from 'viem/actions'
import { Actions, TokenId } from 'viem/tempo'
import { z } from 'zod'
import { maxFeeOf, paidFeeOf } from '../internal/fees.js'
import { isPaidClient } from '../internal/paidTransportMarker.js'
import { otherChain } from '../internal/reasons.js'
import { accessKeyOf, payerOf, prepareInTurn } from './accessKey.js'
import { assertAffordable } from './funds.js'
import type { KeyCall } from './keyScopes.js'
import type { PaymentProvider, PaymentQuote } from './PaymentProvider.js'

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/) as unknown as z.ZodType<Address>
const bytes32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/) as unknown as z.ZodType<Hex>
/** A base-10 integer string of base units (draft-tempo-charge-00), at most a uint256. */
const baseUnits = z
  .string()
  .regex(/^\d{1,78}$/)
  .transform((value) => BigInt(value))
  .refine((value) => value < 2n ** 256n)

/** The parts of a Tempo charge request (draft-tempo-charge-00) that are paid and checked. */
const chargeRequestSchema = z
  .object({
    amount: baseUnits,
    currency: address,
    recipient: address,
    methodDetails: z
      .object({
        chainId: z.number().int().optional(),
        feePayer: z.boolean().optional(),
        memo: bytes32.optional(),
        splits: z
          .array(
            z.object({
              amount: baseUnits.refine((value) => value > 0n),
              recipient: address,
              memo: bytes32.optional(),
            }),
          )
          .min(1)
          // As mppx's own schema: more transfers would not fit the gas of one payment.
          .max(10)
          .optional(),
        supportedModes: z.array(z.string()).optional(),
      })
      .loose()
      .optional(),
  })
  // The primary recipient must keep a non-zero remainder.
  .refine(
    ({ amount, methodDetails }) =>
      (methodDetails?.splits ?? []).reduce((sum, split) => sum + split.amount, 0n) < amount ||
      !methodDetails?.splits,
  )

type ChargeRequest = z.infer<typeof chargeRequestSchema>

/** mppx's pull-mode client adds this much gas for the sender's signature and key checks. */
const signatureGas = 5_000n
/** How far ahead a payment transaction may be valid, as mppx signs it. */
const validFor = 25
/** A prepared transaction with less validity left than this is prepared again before signing. */
const minValidity = 10

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
  const source = Proof.proofSource({ address: account.address, chainId })
  const key = accessKeyOf(account, chainId)
  const { feeToken: chainFeeToken } = client.chain as { feeToken?: TokenId.TokenIdOrAddress }

  /** The challenge's charge request, or why it is not paid here. */
  const read = (
    challenge: Challenge.Challenge,
  ): { request: ChargeRequest; reason?: undefined } | { request?: undefined; reason: string } => {
    if (challenge.method !== 'tempo' || challenge.intent !== 'charge')
      return { reason: 'not a Tempo charge challenge' }
    const parsed = chargeRequestSchema.safeParse(challenge.request)
    if (!parsed.success) return { reason: 'malformed charge request' }
    const { methodDetails } = parsed.data
    if (methodDetails?.chainId !== undefined && methodDetails.chainId !== chainId)
      return { reason: otherChain(methodDetails.chainId, chainId) }
    // Push mode broadcasts before the server has accepted anything; only pull is paid here.
    if (methodDetails?.supportedModes && !methodDetails.supportedModes.includes('pull'))
      return { reason: 'push mode only (only pull is paid)' }
    return { request: parsed.data }
  }
  const parse = (challenge: Challenge.Challenge) => read(challenge).request

  /**
   * The transaction making `calls` (the charge's transfers) as `payer` (see `payerOf`), valid
   * until `expires` at the latest (unix seconds), with its most fee; ready to sign.
   */
  const build = async (
    request: ChargeRequest,
    calls: readonly KeyCall[],
    expires: number,
    payer: Account,
  ) => {
    const sponsored = request.methodDetails?.feePayer === true
    // Unsponsored, the payer names its fee token (as the spec asks): the chain's, else the
    // payer's own preference, else the charge's currency (Tempo's own default for a transfer).
    const feeToken = sponsored
      ? undefined
      : ((chainFeeToken === undefined ? undefined : TokenId.toAddress(chainFeeToken)) ??
        (await Actions.fee.getUserToken(client, { account }))?.address ??
        request.currency)
    const transaction = (await prepareTransactionRequest(client, {
      account: payer,
      calls,
      ...(feeToken ? { feeToken } : {}),
      nonceKey: 'expiring',
      validBefore: Math.min(nowInSeconds() + validFor, expires),
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

  return {
    acceptPayment: 'tempo/charge',
    supports: (challenge) => parse(challenge) !== undefined,
    unsupportedReason: (challenge) => read(challenge).reason,
    async prepare({ challenge, signal }) {
      const request = parse(challenge)
      if (!request) throw new Error(`Not a Tempo charge challenge on chain ${chainId}.`)
      const { amount } = request
      const transfers = transfersOf(challenge, request)
      const expires = challenge.expires
        ? Math.floor(new Date(challenge.expires).getTime() / 1000)
        : Number.POSITIVE_INFINITY
      const quote = {
        method: 'tempo',
        intent: 'charge',
        amount,
        deposit: 0n,
        currency: request.currency,
        recipient: request.recipient,
        transfers,
        chainId,
      }

      // A zero-amount charge is a signed proof of the payer, not a transaction.
      if (amount === 0n)
        return {
          quote: { ...quote, fee: 0n },
          authorize: async () =>
            Credential.serialize({
              challenge,
              payload: {
                signature: await signTypedData(client, {
                  account,
                  ...Proof.typedData({
                    account: account.address,
                    chainId,
                    challengeId: challenge.id,
                    realm: challenge.realm,
                  }),
                }),
                type: 'proof',
              },
              source,
            }),
          commit: async () => {},
          rollback: async () => {},
        }

      const calls = transfers.map(({ recipient, amount, memo }) => {
        const { to, data } = Actions.token.transfer.call(client, {
          to: recipient,
          amount,
          token: request.currency,
          ...(memo ? { memo } : {}),
        })
        return { to, data }
      })
      const begun = await key?.begin(client, signal)
      let turn = begun?.turn
      try {
        const inTurn = await prepareInTurn(account, begun, (payer) =>
          build(request, calls, expires, payer),
        )
        turn = inTurn.turn
        let { prepared } = inTurn
        const { fee, feeToken } = prepared
        await assertAffordable(client, {
          account,
          token: request.currency,
          spends: amount,
          amount,
          fee,
          feeToken,
          calls,
          keychain: inTurn.keychain,
        })
        const payer = payerOf(account, turn?.keyAuthorization)
        /** The hash of the transaction signed, once it is. */
        let signed: Hash | undefined
        return {
          quote: { ...quote, fee, ...(feeToken ? { feeToken } : {}) },
          async authorize() {
            // A slow approval may leave the transaction too little time to be broadcast: unless
            // the challenge itself expires first, it is prepared again, within the fee quoted.
            const validBefore = prepared.transaction.validBefore ?? 0
            if (validBefore < expires && validBefore - nowInSeconds() < minValidity) {
              prepared = await build(request, calls, expires, payer)
              if (prepared.fee > fee)
                throw new Error(
                  `The payment's fee rose above the ${fee} quoted while it waited for approval.`,
                )
            }
            const signature = await signTransaction(client, prepared.transaction as never)
            signed = keccak256(signature)
            return Credential.serialize({
              challenge,
              payload: { signature, type: 'transaction' },
              source,
            })
          },
          // A signed transfer can be broadcast by whoever holds it until it expires.
          bearer: true,
          // The server broadcasts the transaction as signed (a sponsored one, co-signed, costs
          // the payer no fee): the chain tells its fee by its hash.
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
      } catch (error) {
        turn?.end()
        throw error
      }
    },
    async recover({ reason }) {
      // Only a key the chain really lacks is authorized again: re-authorizing a registered key
      // fails on chain (`KeyAlreadyExists`).
      if (reason !== 'keyNotProvisioned' || !key) return false
      return key.recover(client)
    },
  }
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

/**
 * Every transfer of the charge: the primary recipient gets `amount` minus the splits, each split
 * its own amount. The primary transfer carries the challenge's memo, else mppx's attribution memo
 * that binds the payment to the challenge (mppx servers require it).
 */
function transfersOf(
  challenge: Challenge.Challenge,
  { amount, recipient, methodDetails }: ChargeRequest,
): PaymentQuote['transfers'] {
  if (amount === 0n) return []
  const splits = (methodDetails?.splits ?? []).map((split) => ({
    recipient: split.recipient,
    amount: split.amount,
    ...(split.memo ? { memo: split.memo } : {}),
  }))
  const primary = amount - splits.reduce((sum, split) => sum + split.amount, 0n)
  const memo = methodDetails?.memo ?? attributionMemo(challenge)
  return [{ recipient, amount: primary, memo }, ...splits]
}

/**
 * mppx's attribution memo (mppx 0.11 does not export its encoder): "mpp" tag (4 bytes of
 * keccak256("mpp")), version 1, a 10-byte fingerprint of the realm (the server id), 10 zero bytes
 * (no client id), and 7 bytes of keccak256 of the challenge id.
 */
function attributionMemo({ id, realm }: Challenge.Challenge): Hex {
  const fingerprint = (value: string, size: number) => slice(keccak256(stringToHex(value)), 0, size)
  return concat([
    fingerprint('mpp', 4),
    '0x01',
    fingerprint(realm, 10),
    `0x${'00'.repeat(10)}`,
    fingerprint(id, 7),
  ])
}

const nowInSeconds = () => Math.floor(Date.now() / 1000)
