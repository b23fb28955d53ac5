import type {
  ChannelEntry,
  ChannelLease,
  ChannelRecord,
  LedgerTally,
} from '../../stores/ChannelStore.js'
import { entryJson } from '../../stores/entryJson.js'
import { ChannelStoreError } from '../../stores/errors.js'
import type { Connection } from './connection.js'
import { budgetArgument, budgetRefused, type StoreContext } from './context.js'

/** What a lease of the Redis store works with. */
export type LeaseContext = Pick<StoreContext, 'connection' | 'keys' | 'ttl' | 'budget' | 'held'>

/**
 * A lease on a stored channel, held while its fencing token `fence` is the channel's: every write
 * (the mark ahead, an entry change, the exact ledger at the end) is a script that checks it, so
 * that a holder whose lease ran out and was claimed by another writes nothing more. It renews the
 * lease every third of the TTL; `lost` turns true once the TTL (counted from the last renewal
 * sent) has passed without one, so that nothing is signed within the mark on a channel another
 * holder may have by now.
 *
 * @example
 * ```ts
 * const lease = redisLease(context, { record, fence, sentAt, tally })
 * await lease.raise(mark, needed)
 * ```
 */
export function redisLease(
  context: LeaseContext,
  start: { record: ChannelRecord; fence: string; sentAt: number; tally: () => LedgerTally },
): ChannelLease {
  const { connection, keys, ttl, budget, held } = context
  const { record, fence, tally } = start
  const id = record.entry.channelId.toLowerCase()
  const channelKey = keys.channel(id)
  let entry: ChannelEntry = record.entry
  let ended = false
  let lostHere = false
  // A tenth of the TTL's margin for the time a renewal takes to reach Redis.
  // On the monotonic clock (`performance.now()`): a wall clock stepping back must not extend it.
  let validUntil = start.sentAt + ttl - ttl / 10

  const lostError = () =>
    new ChannelStoreError({ reason: 'leaseLost', path: connection.location, channelId: id })
  const run = async (name: Parameters<Connection['run']>[0], keys: string[], args: string[]) => {
    const sentAt = performance.now()
    const [status, ...rest] = await connection.run(name, keys, args)
    if (status === 'lost') {
      lostHere = true
      throw lostError()
    }
    return { status, rest, sentAt }
  }
  const renewed = (sentAt: number) => {
    validUntil = Math.max(validUntil, sentAt + ttl - ttl / 10)
  }
  const end = () => {
    ended = true
    clearInterval(renewal)
    held.delete(release)
  }
  const release = async () => {
    if (ended) return
    end()
    const { signed, spent } = tally()
    await run(
      'release',
      [channelKey, keys.committed],
      [fence, String(signed), String(spent)],
    ).catch(ignoreLost)
  }

  const renewal = setInterval(() => {
    // A mark written since the last tick renewed the lease: paying holders send no renewals.
    if (ended || lostHere || validUntil - performance.now() > ttl - ttl / 10 - ttl / 3) return
    run('renew', [channelKey], [fence, String(ttl)]).then(
      ({ sentAt }) => renewed(sentAt),
      // Lost: said by `lost`. Unavailable: the next renewal tries again, within the TTL.
      () => {},
    )
  }, ttl / 3)
  renewal.unref?.()
  held.add(release)

  return {
    record,
    /** Also once ended (released here, by `close()` or at exit): nothing more is signed on it. */
    get lost() {
      return ended || lostHere || performance.now() > validUntil
    },
    async raise(mark, needed = mark) {
      if (ended || lostHere || performance.now() > validUntil) throw lostError()
      const { signed, spent } = tally()
      const { status, rest, sentAt } = await run(
        'raise',
        [channelKey, keys.committed],
        [
          fence,
          String(mark),
          String(signed),
          String(spent),
          String(ttl),
          String(needed),
          budgetArgument(budget),
        ],
      )
      if (status === 'budget') throw budgetRefused(connection, id, rest[0])
      renewed(sentAt)
      return BigInt(String(rest[0]))
    },
    async update({ deposit, opened }) {
      if (ended) throw lostError()
      entry = {
        ...entry,
        ...(deposit === undefined ? {} : { deposit }),
        ...(opened === undefined ? {} : { opened }),
      }
      await run('update', [channelKey], [fence, entryJson(entry), opened === undefined ? '' : '1'])
    },
    release,
    async remove() {
      if (ended) return
      end()
      const { signed } = tally()
      await run(
        'remove',
        [channelKey, keys.scope(record.origin, record.key), keys.all, keys.committed],
        [id, fence, String(signed)],
      ).catch(ignoreLost)
    },
  }
}

/** Claimed by another holder since: what it wrote stays, and the channel is its to end. */
function ignoreLost(error: unknown) {
  if (!(error instanceof ChannelStoreError && error.reason === 'leaseLost')) throw error
}
