import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { type Chain, type Client, createClient, defineChain, type Hex, http, isHex } from 'viem'
import { getBlock } from 'viem/actions'
import { tempo, tempoDevnet, tempoModerato } from 'viem/chains'
import {
  ChannelError,
  type ChannelSummary,
  closeChannel,
  listChannels,
  syncChannels,
  withdrawChannel,
} from '../channels/index.js'
import { sameId } from '../channels/shared.js'
import { redactUrl } from '../internal/redactUrl.js'
import {
  defaultStorePath,
  type FileChannelStore,
  fileChannelStore,
} from '../node/fileChannelStore.js'
import { discoverKey, keysTomlPath, parseKeysToml } from '../node/keys.js'
import { type RedisChannelStore, redisChannelStore } from '../node/redisChannelStore.js'
import { defineLocalnetChain } from '../testing/localnet/chain.js'
import { commonOptions, parseCommand, parseHttpUrl, parseInteger } from './args.js'
import { CliError, CliUsageError, exitCodes } from './errors.js'
import { channelsHelp as help } from './help.js'
import { formatAmount, formatTable, formatTimeLeft, formatWhen, toJson } from './output.js'
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
    return printChannels([], { json: values.json, now: nowSeconds() })
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

/** Runs `fn`, then closes the store's database handles, whatever `fn` did. */
async function using(store: CliStore, fn: () => Promise<number>) {
  try {
    return await fn()
  } finally {
    await store.close()
  }
}

/** A client for the chain at `rpcUrl`, and the account that pays on it. */
async function payerOn(rpcUrl: string) {
  const client = await connect(rpcUrl)
  return { client, account: await accountFor(client) }
}

function printHelp(text: string) {
  process.stdout.write(text)
  return exitCodes.ok
}

function printJson(value: unknown) {
  process.stdout.write(`${toJson(value)}\n`)
  return exitCodes.ok
}

function printChannels(
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
function leaseOf({ lease }: ChannelSummary) {
  if (!lease) return '-'
  const holder = `${lease.pid ?? '?'}@${lease.host ?? '?'}`
  return lease.live ? holder : `${holder} (dead)`
}

/** The documented fields of `list --json`, in a fixed order. */
function jsonOf(channel: ChannelSummary) {
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

/** The store a command works on, where it is (for messages), and whether it exists yet. */
type CliStore = (FileChannelStore | RedisChannelStore) & {
  readonly where: string
  /** Whether there is a store to read (a file store is not created by looking at it). */
  exists(): boolean
}

/** `--store`: a file (the default one without it), or a `redis://` URL with `--prefix`. */
function openStore(
  { store: value, prefix }: { store?: string | undefined; prefix?: string | undefined },
  command: string,
): CliStore {
  if (value !== undefined && /^rediss?:\/\//i.test(value)) {
    const store = redisChannelStore({ redis: value, prefix })
    return Object.assign(store, { where: store.location, exists: () => true })
  }
  if (prefix !== undefined)
    throw new CliUsageError('--prefix names the channels of a redis:// store (--store)', {
      command,
    })
  const store = value === undefined ? fileChannelStore() : fileChannelStore(value)
  return Object.assign(store, { where: store.path, exists: () => existsSync(store.path) })
}

function channelIdOf(value: string | undefined, command: string): Hex {
  if (value === undefined) throw new CliUsageError('missing <channelId>', { command })
  if (!isHex(value, { strict: true }) || value.length !== 66)
    throw new CliUsageError(`<channelId> must be 0x and 64 hex digits, not '${value}'`, {
      command,
    })
  return value
}

/**
 * The URL to close `channelId` at: `--url` (on the channel's origin, when the store knows it),
 * else the origin's root. Never a URL from disk with a path or query: the store keeps origins.
 */
function endpointOf(summary: ChannelSummary, url: string | undefined, channelId: Hex) {
  const command = 'channels close'
  const { origin } = summary
  if (url !== undefined) {
    if (origin !== undefined && new URL(url).origin !== origin)
      throw new CliUsageError(
        `--url is on ${redactUrl(url)}, but channel ${channelId} was bought from ${origin}`,
        { command },
      )
    return url
  }
  if (origin === undefined)
    throw new CliUsageError(
      `the store does not say which endpoint sold channel ${channelId}: pass --url with the endpoint's URL`,
      { command },
    )
  return `${origin}/`
}

/**
 * A close tried at the origin's root, since no `--url` was given, that the server did not take:
 * the endpoint may be at a path, which the store does not keep.
 */
function atOriginError(error: unknown, channelId: Hex) {
  if (!(error instanceof ChannelError) || !['serverRefused', 'unreachable'].includes(error.reason))
    return error
  const withdraw =
    error.reason === 'unreachable'
      ? `; without the server, \`viem-mpp channels withdraw ${channelId}\` gets the deposit back`
      : ''
  return new CliError(
    `${error.shortMessage.replace(/\.$/, '')} (tried at the origin, all the store keeps: pass --url with the endpoint's URL if the channel was bought at a path${withdraw}).`,
    { cause: error },
  )
}

/**
 * The chain RPC: `--rpc-url`, else the public RPC of the one known chain the keys in keys.toml
 * are for. A `TEMPO_PRIVATE_KEY` is for no chain in particular, so it names none.
 */
async function rpcUrlOf(flag: string | undefined, command: string): Promise<string | undefined> {
  if (flag !== undefined) return parseHttpUrl('--rpc-url', flag, { command })
  const chainIds = await keyChainIds()
  const [chain, ...others] = knownChains.filter((chain) => chainIds.includes(chain.id))
  return chain && others.length === 0 && chainIds.length === 1
    ? chain.rpcUrls.default.http[0]
    : undefined
}

/** {@link rpcUrlOf}, for a command that cannot do without the chain. */
async function requiredRpcUrl(flag: string | undefined, command: string): Promise<string> {
  const rpcUrl = await rpcUrlOf(flag, command)
  if (rpcUrl) return rpcUrl
  throw new CliUsageError(`--rpc-url is needed: ${await whyNoRpcUrl()}`, { command })
}

/** Why keys.toml names no chain RPC to use. */
async function whyNoRpcUrl() {
  if (process.env.TEMPO_PRIVATE_KEY?.trim())
    return 'TEMPO_PRIVATE_KEY is for no chain in particular'
  const chainIds = await keyChainIds()
  if (chainIds.length === 0) return `no key in ${keysTomlPath()} names a chain`
  if (chainIds.length > 1) return `the keys in keys.toml are for chains ${chainIds.join(', ')}`
  return `the keys in keys.toml are for chain ${chainIds[0]}, whose RPC viem-mpp does not know`
}

/** The chain ids of the keys in keys.toml (none without the file or with TEMPO_PRIVATE_KEY). */
async function keyChainIds(): Promise<number[]> {
  if (process.env.TEMPO_PRIVATE_KEY?.trim()) return []
  const path = keysTomlPath()
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch {
    return []
  }
  return [...new Set(parseKeysToml(text, path).map((entry) => entry.chain_id))]
}

const knownChains: readonly Chain[] = [tempo, tempoModerato, tempoDevnet]

/**
 * A client for the chain at `rpcUrl`: viem's definition of the chain with that id, or the
 * localnet's for anvil (its expiring-nonce rules differ), or Tempo's settings with the node's id.
 */
async function connect(rpcUrl: string): Promise<Client> {
  const probe = createClient({ transport: http(rpcUrl, { retryCount: 0, timeout: 10_000 }) })
  let chainId: number
  let clientVersion: string
  try {
    ;[chainId, clientVersion] = await Promise.all([
      probe.request({ method: 'eth_chainId' }).then(Number),
      probe
        .request({ method: 'web3_clientVersion' })
        .then(String)
        .catch(() => ''),
    ])
  } catch (error) {
    throw new CliError(`No JSON-RPC node answers at ${redactUrl(rpcUrl)}.`, {
      cause: error as Error,
      metaMessages: ['Check --rpc-url.'],
    })
  }
  const rpcUrls = { default: { http: [rpcUrl] } }
  const known = knownChains.find((chain) => chain.id === chainId)
  const chain = known
    ? defineChain({ ...known, rpcUrls })
    : clientVersion.startsWith('anvil/')
      ? defineLocalnetChain({ id: chainId, rpcUrl })
      : defineChain({ ...tempo, id: chainId, name: `Tempo chain ${chainId}`, rpcUrls })
  return createClient({ chain, transport: http(rpcUrl) })
}

/** The account that pays on `client`'s chain, found as `mppHttp` finds it. */
async function accountFor(client: Client) {
  const chainId = client.chain?.id as number
  const { account, path, passedOver } = await discoverKey({ chainId })
  if (account) return account
  throw new CliError(
    `No key for chain ${chainId}: set TEMPO_PRIVATE_KEY, or add a key for chain ${chainId} to ${path}.`,
    { metaMessages: passedOver },
  )
}

/** The chain's time (its latest block's), else this machine's, in unix seconds. */
async function now(client: Client | undefined) {
  if (!client) return nowSeconds()
  return Number((await getBlock(client, { blockTag: 'latest' })).timestamp)
}

/** The chain's time from now on, in unix seconds: this machine's clock, set to the chain's. */
async function clockOf(client: Client) {
  const offset = (await now(client)) - nowSeconds()
  return () => nowSeconds() + offset
}

function nowSeconds() {
  return Math.floor(Date.now() / 1000)
}

/** What the store says of `channelId`, if it has it. A store that does not exist is not created. */
async function summaryOf(store: CliStore, channelId: Hex) {
  if (!store.exists()) return undefined
  const summaries = await listChannels({ store })
  return summaries.find((channel) => sameId(channel.channelId, channelId))
}

/** Amounts of `summary`'s currency for people, or in base units when the store lacks it. */
function amountIn(summary: ChannelSummary | undefined) {
  return (value: bigint) =>
    summary ? formatAmount(value, summary.currency) : `${value} base units`
}
