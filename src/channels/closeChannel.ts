import { Challenge, Credential } from 'mppx'
import { Proof, Session } from 'mppx/tempo'
import { type Account, type Hex, isAddressEqual } from 'viem'
import { redactUrl } from '../internal/redactUrl.js'
import { sendWithinOrigin } from '../internal/sendWithinOrigin.js'
import { decodeChallenges } from '../internal/wwwAuthenticate.js'
import { readProblem } from '../Problem.js'
import { parseSessionRequest } from '../providers/session/request.js'
import { type ChainClient, signVoucher } from '../providers/session/transactions.js'
import type { ChannelEntry, ChannelStore } from '../stores/ChannelStore.js'
import { ChannelError } from './errors.js'
import {
  assertPayer,
  closedError,
  closedEvents,
  findRecord,
  latestBlock,
  readState,
  removeRecord,
  reserveLogs,
  sameId,
  stateOf,
} from './shared.js'
import type { ChannelClient } from './types.js'

const { Protocol } = Session.Precompile

export type CloseChannelParameters = {
  /** The store that holds the channel; its entry is removed once the chain shows it closed. */
  store: ChannelStore
  channelId: Hex
  /**
   * A URL of the server that sold the channel (the paid endpoint), on the origin the store
   * records for it (another is refused: `otherOrigin`). It is used for this request only, never
   * stored; errors show its origin only. Redirects are followed within that origin only.
   */
  url: string
  /** The payer (a local account, or the `viem/tempo` access key that signs the channel's vouchers). */
  account: Account
  /** A client for the channel's chain, on an unpaid RPC. */
  client: ChannelClient
  /** @default globalThis.fetch */
  fetch?: typeof fetch | undefined
  /** How long each request to the server may take, in ms. @default 30_000 */
  timeout?: number | undefined
}

export type CloseChannelReturnType = {
  channelId: Hex
  /** What the payee got from the channel in all (earlier settlements included), from the chain's `ChannelClosed`. */
  settled: bigint
  /** What was returned to the payer, read from the chain's `ChannelClosed`. */
  refunded: bigint
  /** The close transaction, as found on chain. */
  txHash: Hex | undefined
}

/**
 * Cooperatively closes a stored channel through the server that sold it: the server settles
 * what it charged, in one transaction that refunds the rest of the deposit to the payer. The
 * close voucher is signed at the lowest amount the server takes — the amount settled on chain,
 * else the amount the server says it charged, never above what the store records as signed —
 * and the outcome is read from the chain's `ChannelClosed` event, not from the server's answer.
 * The store's entry is removed only once the chain shows the channel closed.
 *
 * A server that is unreachable, refuses, or claims a close the chain does not show throws a
 * {@link ChannelError} (`unreachable`, `serverRefused`, `serverLied`) with the store unchanged;
 * `withdrawChannel` then gets the deposit back without the server. A close the server did
 * although its answer was lost (or said otherwise) is found on chain and returned as done.
 *
 * With a store shared between processes (`fileChannelStore`), what the store records as signed
 * is the end of the voucher range reserved, up to 100 calls' worth above the highest voucher
 * really signed: a server claiming to have charged that much is given a close voucher for it.
 *
 * @example
 * ```ts
 * import { closeChannel } from 'viem-mpp'
 *
 * const { settled, refunded } = await closeChannel({ store, channelId, url, account, client })
 * ```
 */
export async function closeChannel({
  store,
  channelId,
  url,
  account,
  client,
  fetch: fetchFn = globalThis.fetch,
  timeout = 30_000,
}: CloseChannelParameters): Promise<CloseChannelReturnType> {
  const record = await findRecord(store, channelId)
  const { origin, entry } = record
  assertPayer(entry, account, { signs: true })
  const server = redactUrl(url)
  // A close voucher is for the server that sold the channel only: another origin could be anyone.
  // (Another program's row may name its origin in another spelling, or a URL.)
  const soldAt = origin === undefined ? undefined : redactUrl(origin)
  if (soldAt !== undefined && soldAt !== '<invalid URL>' && server !== soldAt)
    throw new ChannelError({
      reason: 'otherOrigin',
      message: `Channel ${entry.channelId} was bought from ${soldAt}, not from ${server}: no close voucher is sent there.`,
      channelId: entry.channelId,
    })
  const state = await readState(client, entry)
  if (stateOf(state) === 'closed') throw closedError(entry.channelId)

  // No redirect to another origin is followed: a challenge may name its own credential header,
  // which fetch, unlike `Authorization`, would carry there.
  const send = async (headers: Headers) => {
    try {
      return await sendWithinOrigin(
        fetchFn,
        url,
        { method: 'POST', headers },
        undefined,
        AbortSignal.timeout(timeout),
      )
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
  const challenge = decodeChallenges(probe).find((challenge) => {
    const { request } = parseSessionRequest(challenge, entry.chainId)
    return (
      request !== undefined &&
      isAddressEqual(request.recipient, entry.descriptor.payee) &&
      isAddressEqual(request.currency, entry.descriptor.token) &&
      isAddressEqual(request.escrow, entry.escrow)
    )
  })
  if (!challenge)
    throw refused(`The server at ${server} offered no session challenge for this channel's payee.`)

  const source = Proof.proofSource({ address: account.address, chainId: entry.chainId })
  const closeWith = async (cumulativeAmount: bigint) => {
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
      source,
    })
    return send(new Headers({ [Challenge.credentialHeader(challenge)]: authorization }))
  }

  /** Sends the close voucher (again at the amount the server says it charged), then reads the chain. */
  const requestClose = async (fromBlock: bigint) => {
    let answer = await closeWith(state.settled)
    if (!answer.ok) {
      // The server captures what it charged, and says how much that is when the voucher is below it.
      const wanted = chargedOf(await readProblem(answer))
      if (wanted === undefined || wanted <= state.settled)
        throw refused(`The server at ${server} refused to close the channel (${answer.status}).`)
      if (wanted > entry.cumulativeAmount)
        throw refused(
          `The server at ${server} asks for a close voucher of ${wanted}, more than the ${entry.cumulativeAmount} signed.`,
        )
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
  await removeRecord(store, record)
  return {
    channelId: entry.channelId,
    settled: closed.settledToPayee,
    refunded: closed.refundedToPayer,
    txHash: closed.txHash,
  }
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
    settledToPayee: event.args.settledToPayee,
    refundedToPayer: event.args.refundedToPayer,
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
