/**
 * The command line's help texts, in a module that loads nothing else, so that `--help` answers
 * at once (the commands themselves load viem, mppx and SQLite).
 */
import { hardfork } from '../testing/localnet/hardfork.js'

const commonHelp = `  --store PATH     the channel database (default: $TEMPO_HOME/wallet/channels.db,
                   TEMPO_HOME defaulting to ~/.tempo), or a fleet's Redis: redis://… or
                   rediss://… (redisChannelStore; its password is never printed)
  --prefix NAME    the fleet's store prefix on that Redis (default: viem-mpp)
  --rpc-url URL    the chain's JSON-RPC (default: the public RPC of the chain that the keys in
                   $TEMPO_HOME/wallet/keys.toml are for, when they are all for one known chain)
  --json           print the result as JSON on stdout
  --verbose        print the cause of an error
  -h, --help       print this help`

const keyHelp = `The key is found as mppHttp finds it: TEMPO_PRIVATE_KEY, else the key for the chain in
$TEMPO_HOME/wallet/keys.toml.`

export const channelsHelp = {
  channels: `Usage: viem-mpp channels <command> [options]

Manages the TIP-1034 payment channels that sessions opened: each locks a deposit of the payer's.

Commands:
  list                   the channels in the store: deposit, spent, state, what can be refunded
  close <channelId>      close cooperatively through the server that sold the channel: the
                         payee is settled what it accepted, the rest is refunded
  withdraw <channelId>   without the server: request the close on chain, then (after the
                         900 s grace period, when run again) withdraw what is left
  sync                   rebuild the store's entries of the key's channels from the chain

Options (every command):
${commonHelp}

${keyHelp}
Run 'viem-mpp channels <command> --help' for a command's own options.
`,
  list: `Usage: viem-mpp channels list [options]

Lists the channels in the store, refreshed from the chain when an RPC is known (--rpc-url, or
keys.toml's chain); without one, or when it does not answer, as stored (STATE "open (stored)",
and one line on stderr says why). With --json: an array of objects with channelId, origin, chainId, escrow,
payer, payee, authorizedSigner, currency, deposit, cumulativeAmount, acceptedAmount,
settledAmount, refundable (decimal strings of base units), state ('open', 'closeRequested',
'closed'), withdrawableAt (unix seconds, or null), exact (whether cumulativeAmount is exactly
the highest voucher signed, or only the most that may have been) and lease (the pid and host
of the process holding the channel, and whether it is alive; null when none), and refreshed
(whether the chain was read).

Options:
${commonHelp}

Examples:
  viem-mpp channels list
  viem-mpp channels list --json --store ./channels.db --rpc-url http://127.0.0.1:8545
`,
  close: `Usage: viem-mpp channels close <channelId> [--url URL] [options]

Closes a channel cooperatively through the server that sold it: the payee is settled exactly
what it accepted, and the rest of the deposit is refunded to the payer.

Options:
  --url URL        the paid endpoint's URL the channel was bought at. The store keeps only its
                   origin (a path or query may hold an API key), so pass it when the endpoint
                   is not at the origin's root.
${commonHelp}

${keyHelp}

Examples:
  viem-mpp channels close 0x6d0f…c4a1 --url https://rpc.example.com/v1/KEY
`,
  withdraw: `Usage: viem-mpp channels withdraw <channelId> [--wait] [options]

Gets a channel's deposit back without the server: the first run requests the close on chain
and says when the 900 s grace period ends; a run after that withdraws what is left. Safe to
run again at any time: the close is requested once, and the deposit withdrawn once. During
the grace period the payee can still settle the vouchers it holds; the rest comes back.

Options:
  --wait           stay until the grace period has passed (by the chain's clock), saying how
                   long is left, then withdraw
${commonHelp}

${keyHelp}

Examples:
  viem-mpp channels withdraw 0x6d0f…c4a1
  viem-mpp channels withdraw 0x6d0f…c4a1 --wait
`,
  sync: `Usage: viem-mpp channels sync [--from-block N] [options]

Finds the key's channels on chain (the reserve's ChannelOpened logs for the payer) and writes
the ones the store lacks, or has out of date, so that a lost store loses no channel and the next
paid call reuses the channel instead of opening another.

Options:
  --from-block N   the first block to scan (default: the whole chain)
${commonHelp}

${keyHelp}

Examples:
  viem-mpp channels sync --rpc-url http://127.0.0.1:8545
`,
} as const

export const localnetHelp = `Usage: viem-mpp localnet [options]

Starts a Tempo localnet on loopback: anvil (hardfork ${hardfork.toUpperCase()}) with the TIP-1034
channel reserve, behind a JSON-RPC shim. Prints its RPC URL, chain id, currency and funded dev
accounts, then runs until stopped (Ctrl+C, SIGTERM or SIGHUP, or its parent process exits),
stopping every process it started.

Options:
  --port N                the RPC URL's loopback port (default: a free one)
  --chain-id N            chain id (default: 1337, viem's tempoLocalnet)
  --anvil-binary PATH     anvil 1.7.x binary (default: @foundry-rs/anvil-<platform>'s)
  --start-timeout MS      how long to wait for anvil to listen (default: 15000)
  --stop-on-stdin-close   also stop when stdin closes (for a parent process that pipes it)
  --json                  print the details as one JSON object on stdout
  --verbose               print the cause of an error
  -h, --help              print this help

The dev accounts' keys are anvil's public test keys: never use them on a real network.

Examples:
  viem-mpp localnet
  viem-mpp localnet --port 8545 --chain-id 31337
  viem-mpp localnet --json --stop-on-stdin-close
`

/**
 * The help that `args` (the command line, up to `--`) asks for with `-h`/`--help`: the command's
 * or its subcommand's; `undefined` when none is asked, or for an unknown command (which runs, to
 * say so).
 *
 * @example
 * ```ts
 * const text = helpFor(['channels', 'list', '--help']) // channelsHelp.list
 * ```
 */
export function helpFor(args: readonly string[]): string | undefined {
  const end = args.indexOf('--')
  const options = end === -1 ? args : args.slice(0, end)
  if (!options.includes('--help') && !options.includes('-h')) return undefined
  const [command, sub] = options
  if (command === 'localnet') return localnetHelp
  if (command !== 'channels') return undefined
  if (sub === undefined || sub === '--help' || sub === '-h') return channelsHelp.channels
  return sub === 'list' || sub === 'close' || sub === 'withdraw' || sub === 'sync'
    ? channelsHelp[sub]
    : undefined
}
