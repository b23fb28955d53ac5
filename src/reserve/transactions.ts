import { Session } from 'mppx/tempo'
import { Hex as OxHex } from 'ox'
import {
  type Account,
  type Address,
  type Chain,
  type Client,
  encodeFunctionData,
  type Hex,
  type Transport,
  zeroAddress,
} from 'viem'
import { prepareTransactionRequest, signTransaction } from 'viem/actions'
import { Abis, Transaction } from 'viem/tempo'
import { maxFeeOf } from '../internal/fees.js'
import { nowInSeconds, transactionLifetime } from '../internal/time.js'
import type { ChannelEntry } from '../stores/ChannelStore.js'
import type { SessionRequest } from './sessionRequest.js'

const { Channel, Voucher } = Session.Precompile

export type ChainClient = Client<Transport, Chain>
export type Descriptor = ChannelEntry['descriptor']

/** A channel transaction (open or top-up), prepared and priced, not signed. */
export type PreparedChannelTransaction = {
  transaction: Record<string, unknown> & { validBefore?: number }
  /** The most its fee can cost, in base units of `feeToken`; zero when the server sponsors it. */
  fee: bigint
  feeToken: Address | undefined
}

/**
 * Prepares a channel-reserve call as a Tempo transaction with an expiring nonce (TIP-1009), so
 * that no nonce is read and no other transaction of the payer waits on it. The fee token is the
 * server's choice, else the channel's token, as mppx does. An access key's `account` is the one
 * `withKeyAuthorization` gives: it carries the key authorization this transaction attaches, if any.
 */
export async function prepareChannelTransaction(
  client: ChainClient,
  {
    account,
    request,
    data,
    validAfter,
  }: { account: Account; request: SessionRequest; data: Hex; validAfter?: number | undefined },
): Promise<PreparedChannelTransaction> {
  const feeToken = request.feePayer ? undefined : (request.feeToken ?? request.currency)
  const transaction = (await prepareTransactionRequest(client, {
    account,
    calls: [{ to: request.escrow, data }],
    nonceKey: 'expiring',
    validBefore: nowInSeconds() + transactionLifetime,
    ...(request.feePayer ? { feePayer: true } : { feeToken }),
    ...(validAfter === undefined ? {} : { validAfter }),
  } as never)) as unknown as PreparedChannelTransaction['transaction'] & {
    gas?: bigint
    maxFeePerGas?: bigint
    gasPrice?: bigint
  }
  const fee = request.feePayer ? 0n : maxFeeOf(transaction)
  return { transaction, fee, feeToken }
}

/**
 * Who signs the vouchers of the account's channels: an access key signs them itself, so that
 * they need no root-wallet signature.
 */
export function signerOf(account: Account): Address {
  return (account as { accessKeyAddress?: Address }).accessKeyAddress ?? account.address
}

/**
 * The reserve's `open` call for a new channel of `payer` (its wallet, and who signs its vouchers)
 * with `deposit`, and the descriptor it will have.
 */
export function openCall(
  payer: { address: Address; signer: Address },
  request: SessionRequest,
  deposit: bigint,
): { data: Hex; descriptor: Omit<Descriptor, 'expiringNonceHash'> } {
  const authorizedSigner = payer.signer
  const operator = request.operator ?? zeroAddress
  const salt = OxHex.random(32)
  return {
    data: encodeFunctionData({
      abi: Abis.tip20ChannelReserve,
      functionName: 'open',
      args: [request.recipient, operator, request.currency, deposit, salt, authorizedSigner],
    }),
    descriptor: {
      payer: payer.address,
      payee: request.recipient,
      operator,
      token: request.currency,
      salt,
      authorizedSigner,
    },
  }
}

/** The reserve's `topUp` call adding `additionalDeposit` to the channel. */
export function topUpCall(descriptor: Descriptor, additionalDeposit: bigint): Hex {
  return encodeFunctionData({
    abi: Abis.tip20ChannelReserve,
    functionName: 'topUp',
    args: [descriptor, additionalDeposit],
  })
}

/**
 * Signs the prepared open transaction and derives the channel it opens: its descriptor binds the
 * transaction's expiring-nonce hash (TIP-1034), so the channel id is known before it is sent.
 */
export async function signOpen(
  client: ChainClient,
  {
    sender,
    request,
    prepared,
    descriptor,
  }: {
    /** The payer's wallet, which sends the transaction. */
    sender: Address
    request: SessionRequest
    prepared: PreparedChannelTransaction
    descriptor: Omit<Descriptor, 'expiringNonceHash'>
  },
) {
  const transaction = (await signTransaction(client, prepared.transaction as never)) as Hex
  const expiringNonceHash = Channel.computeExpiringNonceHash(
    Channel.transactionForExpiringNonceHash({
      ...(request.feePayer ? { feePayer: true } : {}),
      transaction: Transaction.deserialize(transaction) as never,
    }),
    { sender },
  )
  const full: Descriptor = { ...descriptor, expiringNonceHash }
  const channelId = Channel.computeId({
    ...full,
    chainId: request.chainId,
    escrow: request.escrow,
  })
  return { transaction, descriptor: full, channelId }
}

/** Signs a voucher for `cumulativeAmount` on the channel (about 1 ms for a local key). */
export function signVoucher(
  client: ChainClient,
  account: Account,
  entry: Pick<ChannelEntry, 'channelId' | 'escrow' | 'chainId'>,
  cumulativeAmount: bigint,
) {
  return Voucher.signVoucher(
    client,
    account,
    { channelId: entry.channelId, cumulativeAmount },
    entry.escrow,
    entry.chainId,
  )
}

/** A random past `validAfter`, which keeps otherwise identical expiring transactions apart. */
export function randomValidAfter() {
  const latest = BigInt(nowInSeconds() - 60)
  return Number(BigInt(OxHex.random(8)) % latest)
}
