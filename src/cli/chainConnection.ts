/**
 * How a `viem-mpp channels` command reaches the chain: the RPC (`--rpc-url`, else the one known
 * chain the keys are for), a client with the right chain definition, the paying account, and the
 * chain's clock.
 */
import { readFile } from 'node:fs/promises'
import { type Chain, type Client, createClient, defineChain, http } from 'viem'
import { getBlock } from 'viem/actions'
import { tempo, tempoDevnet, tempoModerato } from 'viem/chains'
import { redactUrl } from '../internal/redactUrl.js'
import { nowInSeconds } from '../internal/time.js'
import { type DiscoveredKey, discoverKey, keysTomlPath, parseKeysToml } from '../node/keys.js'
import { defineLocalnetChain } from '../testing/localnet/chain.js'
import { parseHttpUrl } from './args.js'
import { CliError, CliUsageError } from './errors.js'

/** The account a command pays (and signs channel messages) with. */
type Payer = NonNullable<DiscoveredKey['account']>

/** A client for the chain at `rpcUrl`, and the account that pays on it. */
export async function payerOn(rpcUrl: string): Promise<{ client: Client; account: Payer }> {
  const client = await connect(rpcUrl)
  return { client, account: await accountFor(client) }
}

/**
 * The chain RPC: `--rpc-url`, else the public RPC of the one known chain the keys in keys.toml
 * are for. A `TEMPO_PRIVATE_KEY` is for no chain in particular, so it names none.
 */
export async function rpcUrlOf(
  flag: string | undefined,
  command: string,
): Promise<string | undefined> {
  if (flag !== undefined) return parseHttpUrl('--rpc-url', flag, { command })
  const chainIds = await keyChainIds()
  const [chain, ...others] = knownChains.filter((chain) => chainIds.includes(chain.id))
  return chain && others.length === 0 && chainIds.length === 1
    ? chain.rpcUrls.default.http[0]
    : undefined
}

/** {@link rpcUrlOf}, for a command that cannot do without the chain. */
export async function requiredRpcUrl(flag: string | undefined, command: string): Promise<string> {
  const rpcUrl = await rpcUrlOf(flag, command)
  if (rpcUrl) return rpcUrl
  throw new CliUsageError(`--rpc-url is needed: ${await whyNoRpcUrl()}`, { command })
}

/** Why keys.toml names no chain RPC to use. */
export async function whyNoRpcUrl() {
  if (process.env.TEMPO_PRIVATE_KEY?.trim())
    return 'TEMPO_PRIVATE_KEY is for no chain in particular'
  const chainIds = await keyChainIds()
  if (chainIds.length === 0) return `no key in ${keysTomlPath()} names a chain`
  if (chainIds.length > 1) return `the keys in keys.toml are for chains ${chainIds.join(', ')}`
  return `the keys in keys.toml are for chain ${chainIds[0]}, whose RPC viem-mpp does not know`
}

/** The chain ids of the keys in keys.toml (none without the file or with TEMPO_PRIVATE_KEY). */
export async function keyChainIds(): Promise<number[]> {
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

/** The Tempo chains viem defines, whose public RPC a command may use. */
const knownChains: readonly Chain[] = [tempo, tempoModerato, tempoDevnet]

/**
 * A client for the chain at `rpcUrl`: viem's definition of the chain with that id, or the
 * localnet's for anvil (its expiring-nonce rules differ), or Tempo's settings with the node's id.
 */
export async function connect(rpcUrl: string): Promise<Client> {
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
export async function accountFor(client: Client): Promise<Payer> {
  const chainId = client.chain?.id as number
  const { account, path, passedOver } = await discoverKey({ chainId })
  if (account) return account
  throw new CliError(
    `No key for chain ${chainId}: set TEMPO_PRIVATE_KEY, or add a key for chain ${chainId} to ${path}.`,
    { metaMessages: passedOver },
  )
}

/** The chain's time (its latest block's), else this machine's, in unix seconds. */
export async function now(client: Client | undefined) {
  if (!client) return nowInSeconds()
  return Number((await getBlock(client, { blockTag: 'latest' })).timestamp)
}

/** The chain's time from now on, in unix seconds: this machine's clock, set to the chain's. */
export async function clockOf(client: Client) {
  const offset = (await now(client)) - nowInSeconds()
  return () => nowInSeconds() + offset
}
