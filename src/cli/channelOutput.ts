/** What `viem-mpp channels` prints: help, JSON, and the channel table. */
import type { ChannelSummary } from '../channels/index.js'
import { exitCodes } from './errors.js'
import { formatAmount, formatTable, formatWhen, toJson } from './output.js'

/** Prints a command's help: exit code 0. */
export function printHelp(text: string) {
  process.stdout.write(text)
  return exitCodes.ok
}

/** Prints `value` as JSON (bigints as strings): exit code 0. */
export function printJson(value: unknown) {
  process.stdout.write(`${toJson(value)}\n`)
  return exitCodes.ok
}

/** Prints channel summaries: a table for people, or `--json`'s documented fields. */
export function printChannels(
  summaries: readonly ChannelSummary[],
  {
    json,
    now,
    refreshed = true,
  }: { json: boolean | undefined; now: number; refreshed?: boolean | undefined },
) {
  if (json) return printJson(summaries.map((summary) => ({ ...jsonOf(summary), refreshed })))
  if (summaries.length === 0) {
    process.stdout.write('No channels.\n')
    return exitCodes.ok
  }
  const rows = summaries.map((channel) => [
    channel.channelId,
    refreshed ? channel.state : `${channel.state} (stored)`,
    formatAmount(channel.deposit, channel.currency),
    `${formatAmount(channel.cumulativeAmount, channel.currency)}${channel.exact ? '' : ' (at most)'}`,
    leaseOf(channel),
    channel.refundable === undefined ? '-' : formatAmount(channel.refundable, channel.currency),
    channel.state === 'closeRequested' && channel.withdrawableAt !== undefined
      ? formatWhen(channel.withdrawableAt, now)
      : '-',
    channel.origin ?? '-',
  ])
  process.stdout.write(
    `${formatTable(['CHANNEL', 'STATE', 'DEPOSIT', 'SIGNED', 'HELD BY', 'REFUNDABLE', 'WITHDRAWABLE', 'ORIGIN'], rows)}\n`,
  )
  return exitCodes.ok
}

/** Who holds a channel: `pid@host` of a live holder, `pid@host (dead)` of one that is gone, or `-`. */
export function leaseOf({ lease }: ChannelSummary) {
  if (!lease) return '-'
  const holder = `${lease.pid ?? '?'}@${lease.host ?? '?'}`
  return lease.live ? holder : `${holder} (dead)`
}

/** The documented fields of `list --json`, in a fixed order. */
export function jsonOf(channel: ChannelSummary) {
  return {
    channelId: channel.channelId,
    state: channel.state,
    deposit: channel.deposit,
    cumulativeAmount: channel.cumulativeAmount,
    exact: channel.exact,
    lease: channel.lease,
    acceptedAmount: channel.acceptedAmount,
    settledAmount: channel.settledAmount,
    refundable: channel.refundable,
    withdrawableAt: channel.withdrawableAt,
    origin: channel.origin,
    chainId: channel.chainId,
    escrow: channel.escrow,
    currency: channel.currency,
    payer: channel.payer,
    payee: channel.payee,
    authorizedSigner: channel.authorizedSigner,
  }
}

/** Amounts of `summary`'s currency for people, or in base units when the store lacks it. */
export function amountIn(summary: ChannelSummary | undefined) {
  return (value: bigint) =>
    summary ? formatAmount(value, summary.currency) : `${value} base units`
}
