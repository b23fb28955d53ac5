import { Challenge, Credential } from 'mppx'
import { Proof, Session } from 'mppx/tempo'
import { type Account, type Hex, isAddressEqual } from 'viem'
import { tokenAmount } from '../internal/tokenAmount.js'
import { decodeChallenges } from '../internal/wwwAuthenticate.js'
import { readProblem } from '../Problem.js'
import { parseSessionRequest } from '../reserve/sessionRequest.js'
import { type ChainClient, signVoucher } from '../reserve/transactions.js'
import type { ChannelEntry } from '../stores/ChannelStore.js'
import { ChannelError } from './errors.js'
import { closedEvents, latestBlock, readState, reserveLogs, sameId } from './shared.js'
import type { ChannelClient } from './types.js'

const { Protocol } = Session.Precompile

export type CooperativeCloseParameters = {
  entry: ChannelEntry
  /** Signs the close voucher: the payer, or the access key that signs the channel's vouchers. */
  account: Account
  client: ChannelClient
  /**
   * Sends a bodyless POST to the server that sold the channel, with `headers`, and answers what
   * the server did; a failure to reach it is thrown as it is (see {@link CooperativeCloseParameters.server}).
   */
  send: (headers: Headers) => Promise<Response>
  /** The server's origin, for messages. */
  server: string
  /** The most the close voucher may be for: the highest voucher signed on the channel. */
  most: bigint
  /**
   * What the payer knows it was served, if it does (its own ledger): the close voucher is offered
   * at that first. @default what is settled on chain
   */
  served?: bigint | undefined
}

export type CooperativeCloseReturnType = {
  /** What the payee got from the channel in all (earlier settlements included). */
  settled: bigint
  /** What was returned to the payer. */
  refunded: bigint
  /** The close transaction, as found on chain. */
  txHash: Hex
}

/**
 * Closes a channel through the server that sold it: the server settles what it charged, in one
 * transaction that refunds the rest of the deposit. The close voucher is signed at the lowest
 * amount the server takes — what the payer knows it was `served`, or what is settled on chain, else
 * what the server says it charged, never above `most` — and the outcome is read from the chain's `ChannelClosed` event, never from the
 * server's answer. A close the server did although its answer was lost (or said otherwise) is
 * found on chain and returned as done.
 *
 * Throws a {@link ChannelError}: `unreachable`, `serverRefused`, `serverLied`, `closed` (closed on
 * chain already), or `rpcUnreachable`.
 *
 * @example
 * ```ts
 * const { settled, refunded } = await cooperativeClose({ entry, account, client, send, server, most })
 * ```
 */
export async function cooperativeClose({
  entry,
  account,
  client,
  send: sendRaw,
  server,
  most,
  served,
}: CooperativeCloseParameters): Promise<CooperativeCloseReturnType> {
  const state = await readState(client, entry)
  if (state.deposit === 0n)
    throw new ChannelError({
      reason: 'closed',
      message: `Channel ${entry.channelId} is closed on chain already: nothing is left in it.`,
      channelId: entry.channelId,
    })
  const send = async (headers: Headers) => {
    try {
      return await sendRaw(headers)
    } catch (error) {
      throw new ChannelError({
        reason: 'unreachable',
        message: `The server at ${server} could not be reached; the channel stays open.`,
        channelId: entry.channelId,
        details: ['withdrawChannel() gets the deposit back without it.'],
        cause: error,
      })
    }
  }
  const refused = (message: string) =>
    new ChannelError({
      reason: 'serverRefused',
      message,
      channelId: entry.channelId,
      details: [
        'The channel stays open; withdrawChannel() gets the deposit back without the server.',
      ],
    })

  const probe = await send(new Headers())
  await probe.body?.cancel()
  const challenge = decodeChallenges(probe).find((challenge) => isFor(challenge, entry))
  if (!challenge)
    throw refused(`The server at ${server} offered no session challenge for this channel's payee.`)

  const closeWith = async (cumulativeAmount: bigint) =>
    send(await closeHeaders(client, { account, entry, challenge, cumulativeAmount }))

  /** Sends the close voucher (again at the amount the server says it charged), then reads the chain. */
  const requestClose = async (fromBlock: bigint) => {
    const first =
      served !== undefined && served > state.settled && served <= most ? served : state.settled
    let answer = await closeWith(first)
    if (!answer.ok) {
      // The server captures what it charged, and says how much that is when the voucher is below it.
      const wanted = chargedOf(await readProblem(answer))
      if (wanted === undefined || wanted <= first)
        throw refused(`The server at ${server} refused to close the channel (${answer.status}).`)
      if (wanted > most) {
        const token = entry.descriptor.token
        // A channel recovered from the chain: this store never saw the vouchers signed on it.
        const unknown = most === 0n ? ' (none known here: its vouchers were signed elsewhere)' : ''
        throw refused(
          `The server at ${server} asks for a close voucher of ${tokenAmount(wanted, token)} (${wanted} base units), above the ${tokenAmount(most, token)} (${most}) signed on the channel${unknown}: it does not close it.`,
        )
      }
      answer = await closeWith(wanted)
      if (!answer.ok) {
        await answer.body?.cancel()
        throw refused(`The server at ${server} refused to close the channel (${answer.status}).`)
      }
    } else await answer.body?.cancel()

    const closed = await closedEvent(client, entry, fromBlock, answer)
    if (closed) return closed
    throw new ChannelError({
      reason: 'serverLied',
      message: `The server at ${server} answered that it closed the channel, and the chain shows no close.`,
      channelId: entry.channelId,
      details: [
        'The channel stays in the store; withdrawChannel() gets the deposit back without the server.',
      ],
    })
  }

  const fromBlock = await latestBlock(client, entry.channelId)
  const closed = await requestClose(fromBlock).catch(async (error: unknown) => {
    // The server may have closed the channel and lost (or garbled) its answer: the chain says.
    const lost =
      error instanceof ChannelError &&
      (error.reason === 'unreachable' || error.reason === 'serverRefused')
    const onChainClose = lost ? await closedEvent(client, entry, fromBlock, undefined) : undefined
    if (onChainClose) return onChainClose
    throw error
  })
  return { settled: closed.settled, refunded: closed.refunded, txHash: closed.txHash }
}

/** Whether `challenge` is a session challenge of the channel's payee, token and reserve. */
function isFor(challenge: Challenge.Challenge, entry: ChannelEntry) {
  const { request } = parseSessionRequest(challenge, entry.chainId)
  return (
    request !== undefined &&
    isAddressEqual(request.recipient, entry.descriptor.payee) &&
    isAddressEqual(request.currency, entry.descriptor.token) &&
    isAddressEqual(request.escrow, entry.escrow)
  )
}

/** The headers of a close request: a close voucher for `cumulativeAmount`, as `challenge`'s credential. */
async function closeHeaders(
  client: ChannelClient,
  {
    account,
    entry,
    challenge,
    cumulativeAmount,
  }: {
    account: Account
    entry: ChannelEntry
    challenge: Challenge.Challenge
    cumulativeAmount: bigint
  },
) {
  // The voucher's domain is the entry's chain and reserve; the client's chain is not used.
  const signature = await signVoucher(client as ChainClient, account, entry, cumulativeAmount)
  const authorization = Credential.serialize({
    challenge,
    payload: {
      action: 'close',
      channelId: entry.channelId,
      descriptor: entry.descriptor,
      cumulativeAmount: cumulativeAmount.toString(),
      signature,
    },
    source: Proof.proofSource({ address: account.address, chainId: entry.chainId }),
  })
  return new Headers({ [Challenge.credentialHeader(challenge)]: authorization })
}

/** What a server's refusal of a close voucher says it charged (mppx: "must be >= N (spent)"). */
function chargedOf(problem: { detail?: string | undefined } | undefined) {
  const [, amount] = /must be >= (\d{1,29}) \(spent\)/.exec(problem?.detail ?? '') ?? []
  return amount === undefined ? undefined : BigInt(amount)
}

/**
 * The channel's `ChannelClosed` since `fromBlock`, from the transaction the server names if it
 * holds it, else from the reserve's logs: the server's word is never taken for it.
 */
async function closedEvent(
  client: ChannelClient,
  entry: ChannelEntry,
  fromBlock: bigint,
  answer: Response | undefined,
) {
  const named = answer && namedTransaction(answer)
  const closes = closedEvents(await reserveLogs(client, entry, fromBlock), entry.channelId)
  const event =
    closes.find(({ transactionHash }) => named && sameId(transactionHash, named)) ?? closes[0]
  if (!event) return undefined
  return {
    settled: event.args.settledToPayee,
    refunded: event.args.refundedToPayer,
    txHash: event.transactionHash,
  }
}

/** The transaction a server's receipt names, if it names one that parses. */
function namedTransaction(answer: Response) {
  const header = answer.headers.get('payment-receipt')
  if (!header) return undefined
  try {
    return Protocol.deserializeSessionReceipt(header).txHash as Hex | undefined
  } catch {
    return undefined
  }
}
