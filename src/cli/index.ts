#!/usr/bin/env node
/**
 * `viem-mpp`, the package's command line: `viem-mpp channels ...` manages payment channels,
 * `viem-mpp localnet` starts a Tempo localnet. Results go to stdout, progress and errors to
 * stderr; an error is one line and its hints (its causes with `--verbose`), and the exit code is 0 on success,
 * 1 when a command failed and 2 for a wrong command line.
 */
import { version } from '../version.js'
import { exitCodes } from './exitCodes.js'
import { helpFor } from './help.js'

const help = `Usage: viem-mpp <command> [options]

Commands:
  channels   list, close, withdraw and recover TIP-1034 payment channels
  localnet   start a Tempo localnet with the channel reserve

Options:
  -h, --help     print this help (also after any command: viem-mpp channels --help)
  --version      print viem-mpp's version

Exit codes: 0 success, 1 the command failed, 2 a wrong command line.
`

/** Runs the command line `args` and resolves with the exit code; errors are printed, not thrown. */
async function main(args: readonly string[]): Promise<number> {
  const [command, ...rest] = args
  // Help is printed without loading the command (viem, mppx, SQLite): at once.
  const asked = helpFor(args)
  if (asked !== undefined) {
    process.stdout.write(asked)
    return exitCodes.ok
  }
  try {
    switch (command) {
      case 'channels':
        return await (await import('./channels.js')).channels(rest)
      case 'localnet':
        return await (await import('./localnet.js')).localnet(rest)
      case undefined:
      case '-h':
      case '--help':
        process.stdout.write(help)
        return command === undefined ? exitCodes.usage : exitCodes.ok
      case '--version':
        process.stdout.write(`${version}\n`)
        return exitCodes.ok
      default:
        throw new (await import('./errors.js')).CliUsageError(
          command.startsWith('-') ? `unknown option '${command}'` : `unknown command '${command}'`,
        )
    }
  } catch (error) {
    // `--verbose` is read from the raw arguments: it applies even when they do not parse.
    const verbose = rest.slice(0, dashDash(rest)).includes('--verbose')
    // Loaded here: it brings viem, which `--help` and `--version` do without.
    const { exitCodeOf, formatError } = await import('./errors.js')
    process.stderr.write(
      // The key's hex digits, so that it is blanked with or without its `0x`.
      formatError(error, {
        verbose,
        secrets: [process.env.TEMPO_PRIVATE_KEY?.trim().replace(/^0x/i, '') ?? ''],
      }),
    )
    return exitCodeOf(error)
  }
}

/** Where `--` ends the options in `args`. */
function dashDash(args: readonly string[]) {
  const index = args.indexOf('--')
  return index === -1 ? args.length : index
}

// Exiting explicitly: a store's or a node's handles must not keep a finished command alive.
process.exit(await main(process.argv.slice(2)))
