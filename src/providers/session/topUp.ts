import type { Challenge } from 'mppx'
import { Session } from 'mppx/tempo'
import { type Hash, keccak256 } from 'viem'
import { signTransaction } from 'viem/actions'
import { paidFeeOf } from '../../internal/fees.js'
import type { SessionRequest } from '../../reserve/sessionRequest.js'
import { randomValidAfter, topUpCall } from '../../reserve/transactions.js'
import type { PreparedPayment } from '../PaymentProvider.js'
import { prepareChannelAffordable } from './affordable.js'
import {
  credentialOf,
  type LiveChannel,
  occupy,
  type SessionContext,
  track,
  voucherCredential,
  voucherSlot,
} from './channel.js'
import { manage } from './endpoint.js'
import { quoteOf } from './quote.js'

const { Chain } = Session.Precompile

/**
 * Pays a call on `channel` by first adding `additional` to its deposit (a management request
 * carrying the signed top-up), then signing the call's voucher. Other payments on the channel
 * wait for the top-up meanwhile.
 *
 * @example
 * ```ts
 * const payment = await topUpPayment(context, { channel, request, challenge, additional, signal })
 * ```
 */
export async function topUpPayment(
  context: SessionContext,
  {
    channel,
    request,
    challenge,
    additional,
    signal,
  }: {
    channel: LiveChannel
    request: SessionRequest
    challenge: Challenge.Challenge
    additional: bigint
    signal: AbortSignal
  },
): Promise<PreparedPayment> {
  const finish = occupy(channel)
  const settle = track(channel)
  const slot = voucherSlot(context, channel, request.amount)
  const data = topUpCall(channel.entry.descriptor, additional)
  const prepared = await prepareChannelAffordable(context, {
    request,
    spends: additional,
    data,
    validAfter: randomValidAfter(),
    signal,
  }).catch((error: unknown) => {
    settle()
    finish()
    throw error
  })
  const { turn } = prepared

  /** The hash of the top-up transaction, once signed: the server broadcasts it as it is. */
  let signed: Hash | undefined
  const topUp = async () => {
    const transaction = await signTransaction(
      context.client,
      (await prepared.ready()).transaction as never,
    )
    signed = keccak256(transaction)
    const authorization = credentialOf(context, challenge, {
      action: 'topUp',
      type: 'transaction',
      channelId: channel.entry.channelId,
      transaction,
      descriptor: channel.entry.descriptor,
      additionalDeposit: additional.toString(),
    })
    try {
      const answer = await manage(channel.endpoint, {
        credential: { challenge, authorization },
        signal,
      })
      await answer.body?.cancel()
      if (!answer.ok) throw new Error(`The server answered ${answer.status} to the top-up.`)
      await turn?.provisioned()
      channel.entry = { ...channel.entry, deposit: channel.entry.deposit + additional }
      await channel.lease.update({ deposit: channel.entry.deposit })
    } catch (error) {
      // The top-up may have landed all the same: the chain knows.
      turn?.unknown()
      await refreshDeposit(context, channel).catch(() => {})
      throw error
    }
  }

  return {
    quote: quoteOf(context, request, {
      amount: request.amount,
      deposit: additional,
      fee: prepared.fee,
      feeToken: prepared.feeToken,
    }),
    feePaid: async () => (signed ? paidFeeOf(context.client, signed) : undefined),
    async authorize() {
      try {
        await topUp()
      } finally {
        turn?.end()
        finish()
      }
      return voucherCredential(context, challenge, channel, await slot.sign())
    },
    async commit() {
      slot.settle('served')
      settle()
    },
    async rollback() {
      turn?.end()
      finish()
      slot.settle('refused')
      settle()
    },
  }
}

/**
 * Reads the channel's deposit from the chain: after a top-up whose outcome is unknown, or when
 * the server says a voucher exceeds it (a stored entry can be wrong).
 */
export async function refreshDeposit(context: SessionContext, channel: LiveChannel) {
  const { deposit } = await Chain.getChannelState(
    context.client,
    channel.entry.channelId,
    channel.entry.escrow,
  )
  if (deposit > 0n && deposit !== channel.entry.deposit) {
    channel.entry = { ...channel.entry, deposit }
    await channel.lease.update({ deposit })
  }
}
