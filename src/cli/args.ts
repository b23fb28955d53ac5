import type { ParseArgsConfig } from 'node:util'
import { CliUsageError } from './errors.js'

/** The options every command takes, for `node:util`'s `parseArgs`. */
export const commonOptions = {
  help: { type: 'boolean', short: 'h' },
  verbose: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

/**
 * Runs `parse` (`node:util`'s `parseArgs`, strict, with {@link commonOptions}) and turns its
 * errors, and positional arguments beyond `positionals`, into {@link CliUsageError}s naming
 * `command`.
 *
 * @example
 * ```ts
 * const { values } = parseCommand('channels list', () =>
 *   parseArgs({ args, options: { ...commonOptions, json: { type: 'boolean' } }, strict: true }),
 * )
 * ```
 */
export function parseCommand<
  parsed extends { values: { help?: boolean | undefined }; positionals: string[] },
>(command: string, parse: () => parsed, { positionals = 0 }: { positionals?: number } = {}) {
  let parsed: parsed
  try {
    parsed = parse()
  } catch (error) {
    // What is wrong, without Node's syntax hints (about `--`, or `--flag=-value`) that follow.
    const message = (error as Error).message.split(/\n|\. To specify/)[0] ?? ''
    throw new CliUsageError(message.replace(/\.$/, ''), { command })
  }
  const extra = parsed.positionals[positionals]
  if (extra !== undefined && !parsed.values.help)
    throw new CliUsageError(`unexpected argument '${extra}'`, { command })
  return parsed
}

/**
 * `value` as an integer between `min` and `max`, or a {@link CliUsageError} naming `flag`.
 *
 * @example
 * ```ts
 * const port = parseInteger('--port', '8545', { command: 'localnet', min: 0, max: 65_535 })
 * ```
 */
export function parseInteger(
  flag: string,
  value: string,
  { command, min, max }: { command: string; min: number; max: number },
): number {
  const number = /^\d+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(number) || number < min || number > max)
    throw new CliUsageError(`${flag} must be an integer from ${min} to ${max}, not '${value}'`, {
      command,
    })
  return number
}

/**
 * `value` as an `http:` or `https:` URL, or a {@link CliUsageError} naming `flag` (without
 * quoting the value, whose path or query may hold a secret).
 *
 * @example
 * ```ts
 * const url = parseHttpUrl('--rpc-url', 'https://rpc.tempo.xyz', { command: 'channels sync' })
 * ```
 */
export function parseHttpUrl(
  flag: string,
  value: string,
  { command }: { command: string },
): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new CliUsageError(`${flag} is not a URL`, { command })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliUsageError(`${flag} must be an http: or https: URL`, { command })
  return value
}
