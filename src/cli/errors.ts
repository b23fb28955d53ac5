import { BaseError } from '../errors.js'
import { redactUrls } from '../internal/redactUrl.js'
import { exitCodes } from './exitCodes.js'

export { exitCodes }

export type CliUsageErrorType = CliUsageError & { name: 'CliUsageError' }

/**
 * The command line was wrong: an unknown command or option, a missing argument, a malformed
 * value. The CLI exits with {@link exitCodes}.usage.
 *
 * @example
 * ```ts
 * throw new CliUsageError('missing <channelId>', { command: 'channels close' })
 * ```
 */
export class CliUsageError extends BaseError {
  /** The command whose `--help` explains the usage, e.g. `channels close`. */
  readonly command: string | undefined

  constructor(shortMessage: string, { command }: { command?: string | undefined } = {}) {
    super(shortMessage, { name: 'CliUsageError' })
    this.command = command
  }
}

export type CliErrorType = CliError & { name: 'CliError' }

/**
 * A command could not do what it was asked, for a reason the CLI itself found (no key, no RPC
 * answering, ...). Errors from the library keep their own classes.
 *
 * @example
 * ```ts
 * throw new CliError('No key found for chain 4217.', { metaMessages: ['Set TEMPO_PRIVATE_KEY.'] })
 * ```
 */
export class CliError extends BaseError {
  constructor(
    shortMessage: string,
    { cause, metaMessages }: { cause?: Error | undefined; metaMessages?: string[] } = {},
  ) {
    super(shortMessage, { cause, metaMessages, name: 'CliError' })
  }
}

/**
 * What the CLI prints for `error` on stderr: one line, its short message and, for errors from
 * outside the library, the innermost cause (`HTTP request failed: bad port`); then, for the
 * library's own errors, their hints (what to do next), naming the CLI's commands and flags rather
 * than the library's functions. With `verbose`, each cause follows, with its own hints. URLs are cut to their origins and the
 * `secrets` given (the private key in use) are blanked, whatever an error quotes.
 *
 * @example
 * ```ts
 * process.stderr.write(formatError(error, { verbose: false, secrets: [privateKey] }))
 * ```
 */
export function formatError(
  error: unknown,
  { verbose, secrets = [] }: { verbose: boolean; secrets?: readonly string[] },
): string {
  const clean = (text: string) => {
    let result = redactUrls(text)
    // A short value is no key, and blanking it would garble the line.
    for (const secret of secrets)
      if (secret.length >= 32) result = result.split(secret).join('<redacted>')
    return result
  }
  const chain = causes(error)
  const top = chain[0] as Error
  const innermost = chain.at(-1) as Error
  let line = summary(top)
  // A store that cannot be used says neither which file nor why: both are added (the system's
  // reason is all there is).
  const { path, reason: storeReason } = top as { path?: unknown; reason?: unknown }
  const unusable =
    top.name === 'ChannelStoreError' && storeReason === 'unavailable' && typeof path === 'string'
  if (unusable) line = `${line.replace(/\.$/, '')} (${path})`
  const reason =
    ownError(top) && !unusable ? ownDetails(top) : innermost !== top && summary(innermost)
  if (reason && reason !== line) line = `${line.replace(/\.$/, '')}: ${reason}`
  if (top instanceof CliUsageError)
    line += ` (see \`viem-mpp ${top.command ? `${top.command} ` : ''}--help\`)`
  const lines = [`viem-mpp: ${line}`]
  // Our own errors' hints say what to do next: always shown, in the CLI's terms.
  const hintsOf = (error: Error) =>
    ((error as BaseError).metaMessages ?? []).map((meta) => meta.trim()).filter(Boolean)
  if (ownError(top))
    for (const hint of hintsOf(top))
      if (!line.includes(hint.replace(/^File: /, '')))
        lines.push(`  ${inCliTerms(hint, (top as { channelId?: unknown }).channelId)}`)
  if (verbose)
    for (const error of chain.slice(1)) {
      lines.push(`  caused by ${error.name}: ${summary(error)}`)
      for (const hint of hintsOf(error)) lines.push(`    ${hint}`)
    }
  // The error's own line is kept whole; viem's hints may quote whole request bodies.
  return `${lines.map((line, index) => (index === 0 ? clean(line) : truncate(clean(line)))).join('\n')}\n`
}

/**
 * The library's functions and options a hint names, as the CLI's commands and flags: a user at
 * the command line runs those.
 */
const cliTerms: readonly [RegExp, string][] = [
  [/\bwithdrawChannel\(\)/g, '`viem-mpp channels withdraw <channelId>`'],
  [/\bcloseChannel\(\)/g, '`viem-mpp channels close <channelId>`'],
  [/\bsyncChannels\(\)/g, '`viem-mpp channels sync`'],
  [/\blistChannels\(\)/g, '`viem-mpp channels list`'],
  [/`anvilBinary`/g, '`--anvil-binary <path>`'],
  [/`port`/g, '`--port`'],
]

/** `hint` with the library's names replaced by the CLI's (with the error's channel, if it names one). */
function inCliTerms(hint: string, channelId: unknown) {
  const terms = cliTerms.reduce((text, [name, command]) => text.replace(name, command), hint)
  return typeof channelId === 'string' ? terms.replaceAll('<channelId>', channelId) : terms
}

/** A line cut to a readable length. */
function truncate(line: string) {
  return line.length > 240 ? `${line.slice(0, 239)}…` : line
}

/**
 * The last line of what an error of ours was given as `details` (e.g. anvil's last words), the
 * clearest reason there is when it has no cause.
 */
function ownDetails(error: Error) {
  const { details } = error as { details?: unknown }
  if (error.cause !== undefined || typeof details !== 'string') return undefined
  return details.trim().split('\n').at(-1)?.trim() || undefined
}

/** The exit code for `error`. */
export function exitCodeOf(error: unknown): number {
  return error instanceof CliUsageError ? exitCodes.usage : exitCodes.failed
}

/** `error` and its causes, outermost first. */
function causes(error: unknown): Error[] {
  const chain: Error[] = []
  for (let cause = error; chain.length < 8 && cause !== undefined; ) {
    const next = cause instanceof Error ? cause : new Error(String(cause))
    chain.push(next)
    cause = next.cause
  }
  return chain
}

/** An error's first line: viem's short message, without the details and version it appends. */
function summary(error: Error): string {
  const { shortMessage } = error as { shortMessage?: unknown }
  const text = typeof shortMessage === 'string' && shortMessage ? shortMessage : error.message
  return (text.split('\n')[0] ?? '').trim() || error.name
}

/**
 * Whether `error` comes from viem-mpp, whose short messages say what happened on their own; a
 * cause is then shown with `--verbose` only.
 */
function ownError(error: Error) {
  return (
    error instanceof CliError ||
    error instanceof CliUsageError ||
    /^(Channel|ChannelStore|KeyDiscovery|Payment\w*|LocalnetStart|AnvilStart)Error$/.test(
      error.name,
    )
  )
}
