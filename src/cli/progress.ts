import type { ChannelProgress } from '../channels/index.js'
import { formatWhen } from './output.js'

/**
 * A reporter of a long operation's steps on `stream` (stderr), one line each, so that stdout
 * carries the result only (and stays parseable with `--json`). `now` is the chain's time in unix
 * seconds, which the grace period is counted in (a localnet's clock may run ahead of this
 * machine's).
 *
 * @example
 * ```ts
 * await withdrawChannel({ ...parameters, onProgress: progress(process.stderr, () => chainNow) })
 * ```
 */
export function progress(stream: NodeJS.WritableStream, now: () => number) {
  return (event: ChannelProgress) => {
    stream.write(`${describe(event, now())}\n`)
  }
}

function describe(event: ChannelProgress, now: number): string {
  switch (event.type) {
    case 'transaction':
      return `${event.label}: waiting for transaction ${event.hash}`
    case 'waiting':
      return `${event.label}: until ${formatWhen(event.until, now)}`
    case 'scan':
      return `scanning blocks ${event.fromBlock} to ${event.toBlock}`
  }
}
