import type { Challenge } from 'mppx'
import { entryKey } from 'mppx/client'
import type { Hex } from 'viem'
import type { SessionRequest } from '../../reserve/sessionRequest.js'
import type { ChannelEntry } from '../../stores/ChannelStore.js'
import type { PaidRequest } from '../PaymentProvider.js'
import type { Book } from './book.js'
import type { LiveChannel, SessionContext } from './channel.js'
import type { PaidWith } from './recover.js'
import type { Scope } from './scope.js'

/** A cached challenge is reused only while it has at least this long left (ms). */
const challengeMargin = 5_000

/**
 * What one session provider keeps in memory: its settings, its scopes (one per endpoint origin,
 * payee, token and reserve, each with the channel it pays on), and what it remembers of the
 * challenges it paid.
 */
export type SessionState = {
  readonly context: SessionContext
  readonly book: Book
  /** What a channel may hold: `maxDeposit`, at most a TIP-1034 (uint96) amount. */
  readonly cap: bigint
  /** `maxDeposit` as given: a price above it is refused. */
  readonly maxDeposit: bigint | undefined
  /** The deposit the user prefers for a new channel and a top-up. */
  readonly preferredDeposit: bigint | undefined
  readonly scopes: Map<string, Scope>
  /** Which scope (and voucher) each challenge was paid with, for `recover`. */
  readonly paidWith: WeakMap<Challenge.Challenge, PaidWith>
  /** The last accepted challenge per origin + pathname, for `challengeFor`. */
  readonly accepted: Map<string, { challenge: Challenge.Challenge; scope: Scope }>
  /** Channels this provider gave up on: not taken up again. */
  readonly passedOver: Set<Hex>
}

/**
 * The scope of `request` on `origin`, created on first use.
 *
 * @example
 * ```ts
 * const scope = scopeOf(state, new URL(url).origin, request)
 * ```
 */
export function scopeOf(state: SessionState, origin: string, request: SessionRequest): Scope {
  const key = entryKey({
    descriptor: { payee: request.recipient, token: request.currency },
    escrow: request.escrow,
    chainId: state.context.chainId,
  } as ChannelEntry)
  const id = `${origin}\n${key}`
  let scope = state.scopes.get(id)
  if (!scope) {
    scope = {
      origin,
      key,
      channel: undefined,
      busy: undefined,
      lost: undefined,
      retired: [],
      replaced: false,
    }
    state.scopes.set(id, scope)
  }
  return scope
}

/** Drops the challenges cached for `scope`: its next call waits to be asked. */
export function forget(state: SessionState, scope: Scope) {
  for (const [key, cached] of state.accepted) if (cached.scope === scope) state.accepted.delete(key)
}

/** Sets a channel aside for `close()` (it stays leased): the scope takes another. */
export function retire(state: SessionState, scope: Scope, channel: LiveChannel) {
  if (scope.channel !== channel) return
  scope.channel = undefined
  scope.retired.push(channel)
  forget(state, scope)
}

/** Keeps `challenge`, just accepted for `url`, for the later calls to that URL to pay first. */
export function remember(
  state: SessionState,
  scope: Scope,
  challenge: Challenge.Challenge,
  url: string,
) {
  const { origin, pathname } = new URL(url)
  state.accepted.set(origin + pathname, { challenge, scope })
}

/**
 * The challenge `request` may pay before it is sent: the last one accepted for its URL, while it
 * is unexpired and its scope has a channel ready. A copy per request, so that `recover` tells its
 * payment from the others'.
 *
 * @example
 * ```ts
 * const challenge = challengeFor(state, request) // undefined: the request goes out unpaid
 * ```
 */
export function challengeFor(
  state: SessionState,
  request: PaidRequest,
): Challenge.Challenge | undefined {
  const { origin, pathname } = new URL(request.url)
  const cached = state.accepted.get(origin + pathname)
  if (!cached) return undefined
  const { expires } = cached.challenge
  if (expires !== undefined && Date.parse(expires) - challengeMargin <= Date.now()) {
    state.accepted.delete(origin + pathname)
    return undefined
  }
  const { scope } = cached
  if (!scope.channel || scope.busy || scope.channel.busy || scope.channel.ledger.behind)
    return undefined
  return { ...cached.challenge }
}
