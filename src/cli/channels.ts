import { type ParseArgsConfig, parseArgs } from 'node:util'
import type { Client } from 'viem'
import {
  ChannelError,
  closeChannel,
  listChannels,
  syncChannels,
  withdrawChannel,
} from '../channels/index.js'
import { redactUrl } from '../internal/redactUrl.js'
import { nowInSeconds } from '../internal/time.js'
import { defaultStorePath } from '../node/fileChannelStore.js'
import { commonOptions, parseCommand, parseHttpUrl, parseInteger } from './args.js'
import { clockOf, connect, now, payerOn, requiredRpcUrl, rpcUrlOf } from './chainConnection.js'
import { amountIn, printChannels, printHelp, printJson } from './channelOutput.js'
import {
  atOriginError,
  channelIdOf,
  endpointOf,
  openStore,
  summaryOf,
  using,
} from './channelStore.js'
import { CliError, CliUsageError, exitCodes } from './errors.js'
import { channelsHelp as help } from './help.js'
import { formatTimeLeft, formatWhen } from './output.js'
import { progress } from './progress.js'

const channelOptions = {
  ...commonOptions,
  store: { type: 'string' },
  prefix: { type: 'string' },
  'rpc-url': { type: 'string' },
  json: { type: 'boolean' },
} as const

/**
 * `viem-mpp channels <list|close|withdraw|sync>`: resolves with the exit code, throws what the
 * CLI prints as one line.
 *
 * @example
 * ```ts
 * process.exitCode = await channels(['list', '--json'])
 * ```
 */
export async function channels(args: readonly string[]): Promise<number> {
  const [command, ...rest] = args
  switch (command) {
    case 'list':
      return list(rest)
    case 'close':
      return close(rest)
    case 'withdraw':
      return withdraw(rest)
    case 'sync':
      return sync(rest)
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(help.channels)
      return command === undefined ? exitCodes.usage : exitCodes.ok
    default:
      throw new CliUsageError(
        command.startsWith('-') ? `unknown option '${command}'` : `unknown command '${command}'`,
        { command: 'channels' },
      )
  }
}

async function list(args: readonly string[]) {
  const command = 'channels list'
  const { values } = parseChannelCommand(command, args, {})
  if (values.help) return printHelp(help.list)
  const store = openStore(values, command)
  const rpcUrl = await rpcUrlOf(values['rpc-url'], command)
  // A store that does not exist has no channels, and is not created by looking; a path given
  // that names nothing is more likely a typo than an empty store.
  if (!store.exists()) {
    if (values.store !== undefined)
      throw new CliError(
        `No channel store at ${store.where}: check --store (the default is ${defaultStorePath()}).`,
      )
    return printChannels([], { json: values.json, now: nowInSeconds() })
  }
  return using(store, async () => {
    // Without the chain, the channels are listed as stored, and said to be.
    let stale = rpcUrl ? undefined : 'no --rpc-url'
    const client = rpcUrl
      ? await connect(rpcUrl).catch(() => {
          stale = `no JSON-RPC node answers at ${redactUrl(rpcUrl)}`
          return undefined
        })
      : undefined
    const summaries = await listChannels({ store, client }).catch(async (error: unknown) => {
      if (!(error instanceof ChannelError && error.reason === 'rpcUnreachable')) throw error
      stale = `the chain's RPC failed (${error.shortMessage})`
      return listChannels({ store })
    })
    if (stale && summaries.length > 0)
      process.stderr.write(
        `viem-mpp: not refreshed from the chain (${stale}): states and deposits are as stored.\n`,
      )
    return printChannels(summaries, {
      json: values.json,
      now: await now(stale ? undefined : client),
      refreshed: !stale,
    })
  })
}

async function close(args: readonly string[]) {
  const command = 'channels close'
  const { values, positionals } = parseChannelCommand(
    command,
    args,
    { url: { type: 'string' } },
    { positionals: 1 },
  )
  if (values.help) return printHelp(help.close)
  const channelId = channelIdOf(positionals[0], command)
  const url = values.url === undefined ? undefined : parseHttpUrl('--url', values.url, { command })
  const rpcUrl = await requiredRpcUrl(values['rpc-url'], command)
  const store = openStore(values, command)
  return using(store, async () => {
    const { client, account } = await payerOn(rpcUrl)
    const summary = await summaryOf(store, channelId)
    // A cooperative close signs with what the store recorded: without it there is nothing to sign.
    if (!summary) throw new CliError(`No channel ${channelId} in ${store.where}.`)
    const endpoint = endpointOf(summary, url, channelId)
    const result = await closeChannel({ store, channelId, url: endpoint, account, client }).catch(
      (error: unknown) => {
        throw url === undefined ? atOriginError(error, channelId) : error
      },
    )
    if (values.json) return printJson(result)
    const amount = amountIn(summary)
    process.stdout.write(
      `Closed channel ${channelId}: settled ${amount(result.settled)} to the payee, refunded ${amount(result.refunded)}${result.txHash ? ` (transaction ${result.txHash})` : ''}.\n`,
    )
    return exitCodes.ok
  })
}

async function withdraw(args: readonly string[]) {
  const command = 'channels withdraw'
  const { values, positionals } = parseChannelCommand(
    command,
    args,
    { wait: { type: 'boolean' } },
    { positionals: 1 },
  )
  if (values.help) return printHelp(help.withdraw)
  const channelId = channelIdOf(positionals[0], command)
  const rpcUrl = await requiredRpcUrl(values['rpc-url'], command)
  const store = openStore(values, command)
  return using(store, async () => {
    const { client, account } = await payerOn(rpcUrl)
    const summary = await summaryOf(store, channelId)
    const step = async () =>
      withdrawChannel({
        // Not in the store (lost, or closed and removed): found from the chain's logs instead.
        store: summary && store,
        channelId,
        account,
        client,
        onProgress: progress(process.stderr, await clockOf(client)),
      })
    let result = await step()
    while (values.wait && result.state === 'closeRequested') {
      await untilChainTime(client, result.withdrawableAt)
      result = await step()
    }
    if (values.json) return printJson(result)
    if (result.state === 'closeRequested')
      process.stdout.write(
        `Close requested for channel ${channelId}. Its deposit can be withdrawn at ${formatWhen(result.withdrawableAt, await now(client))}: run this command again then (or with --wait).\n`,
      )
    else
      process.stdout.write(
        `Withdrew ${amountIn(summary)(result.refunded)} from channel ${channelId}${result.txHash ? ` (transaction ${result.txHash})` : ''}; it is closed.\n`,
      )
    return exitCodes.ok
  })
}

/** How often `--wait` reads the chain's time, and how often it says how long is left, in ms. */
const waitPoll = 2_000
const waitReport = 60_000

/**
 * Resolves once the chain's latest block is at `at` (unix seconds) or later, saying on stderr
 * how long is left, once a minute.
 */
async function untilChainTime(client: Client, at: number) {
  let reported = 0
  for (let time = await now(client); time < at; time = await now(client)) {
    if (Date.now() - reported >= waitReport) {
      process.stderr.write(`close grace period: ${formatTimeLeft(at, time)} left\n`)
      reported = Date.now()
    }
    await new Promise((resolve) => setTimeout(resolve, waitPoll))
  }
}

async function sync(args: readonly string[]) {
  const command = 'channels sync'
  const { values } = parseChannelCommand(command, args, { 'from-block': { type: 'string' } })
  if (values.help) return printHelp(help.sync)
  const fromBlock =
    values['from-block'] === undefined
      ? undefined
      : BigInt(
          parseInteger('--from-block', values['from-block'], {
            command,
            min: 0,
            max: Number.MAX_SAFE_INTEGER,
          }),
        )
  const rpcUrl = await requiredRpcUrl(values['rpc-url'], command)
  const store = openStore(values, command)
  return using(store, async () => {
    const { client, account } = await payerOn(rpcUrl)
    const result = await syncChannels({
      store,
      client,
      payer: account.address,
      fromBlock,
      onProgress: progress(process.stderr, await clockOf(client)),
    })
    if (values.json) return printJson(result)
    process.stderr.write(
      `Found ${result.channels.length} channel(s) of ${account.address}: ${result.added.length} added to the store, ${result.updated.length} updated.\n`,
    )
    return printChannels(result.channels, { json: false, now: await now(client) })
  })
}

/**
 * Parses a channel command's arguments: the options every channel command takes, and `options`.
 */
function parseChannelCommand<const options extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  args: readonly string[],
  options: options,
  { positionals = 0 }: { positionals?: number } = {},
) {
  return parseCommand(
    command,
    () =>
      parseArgs({
        args: [...args],
        options: { ...channelOptions, ...options },
        allowPositionals: true,
        strict: true,
      }),
    { positionals },
  )
}
