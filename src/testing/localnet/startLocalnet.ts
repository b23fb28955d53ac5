import { type Address, BaseError, createClient, type Hex, http } from 'viem'
import { mnemonicToAccount, privateKeyToAddress } from 'viem/accounts'
import { Addresses } from 'viem/tempo'
import { redactUrl } from '../../internal/redactUrl.js'
import { type Anvil, startAnvil } from './anvil.js'
import { defineLocalnetChain, type LocalnetChain } from './chain.js'
import { installReserve } from './reserve.js'
import { type ReserveShim, startReserveShim } from './shim.js'

/** The mnemonic of anvil's funded dev accounts. */
const devMnemonic = 'test test test test test test test test test test test junk'

export type StartLocalnetOptions = {
  /**
   * Attach to a node that is already running (another process's localnet, a devnet or a testnet)
   * instead of starting one: nothing is started, installed or stopped.
   */
  rpcUrl?: string | undefined
  /**
   * Private keys of funded accounts on the node given by `rpcUrl`. Default: anvil's dev accounts,
   * which are funded on a localnet only.
   */
  privateKeys?: readonly Hex[] | undefined
  /** Chain id of a started node. @default 1337 (viem's `tempoLocalnet`) */
  chainId?: number | undefined
  /** Loopback port for anvil. @default 0 (a free port) */
  port?: number | undefined
  /** Path to an anvil binary. @default the `@foundry-rs/anvil` npm distribution's */
  anvilBinary?: string | undefined
  /** How long to wait for the node, in ms. @default 15_000 */
  startTimeout?: number | undefined
}

export type Localnet = {
  /** JSON-RPC URL of the node (through the channel reserve shim when started here). */
  rpcUrl: string
  /** viem chain definition for the node; `rpcUrls.default.http[0]` is `rpcUrl`. */
  chain: LocalnetChain
  /** Funded accounts. */
  accounts: readonly { address: Address; privateKey: Hex }[]
  /** The default payment currency: pathUSD. */
  currency: Address
  /** Stops every process and server this call started; does nothing when attached. Idempotent. */
  stop(): Promise<void>
}

export type LocalnetStartErrorType = LocalnetStartError & { name: 'LocalnetStartError' }

export class LocalnetStartError extends BaseError {
  constructor(
    shortMessage: string,
    { cause, metaMessages }: { cause?: Error; metaMessages?: string[] } = {},
  ) {
    super(shortMessage, { cause, metaMessages, name: 'LocalnetStartError' })
  }
}

/**
 * Starts a Tempo localnet: anvil (hardfork T4) with the TIP-1034 channel reserve installed at its
 * canonical address, behind a JSON-RPC shim that supplies what the Solidity reserve cannot do as
 * a contract. With `rpcUrl`, attaches to a running node instead.
 *
 * @example
 * ```ts
 * import { startLocalnet } from 'viem-mpp/testing'
 *
 * const net = await startLocalnet()
 * console.log(net.rpcUrl, net.accounts[0].address)
 * await net.stop()
 * ```
 */
export async function startLocalnet(options: StartLocalnetOptions = {}): Promise<Localnet> {
  const { startTimeout = 15_000 } = options
  if (options.rpcUrl) return attach(options.rpcUrl, options.privateKeys, startTimeout)

  const chainId = options.chainId ?? 1337
  let anvil: Anvil | undefined
  let shim: ReserveShim | undefined
  const stop = async () => {
    await shim?.stop()
    await anvil?.stop()
  }
  try {
    anvil = await startAnvil({
      binary: options.anvilBinary,
      chainId,
      port: options.port ?? 0,
      startTimeout,
    })
    await installReserve(createClient({ transport: http(anvil.rpcUrl) }))
    shim = await startReserveShim({ upstream: anvil.rpcUrl })
  } catch (error) {
    await stop()
    throw error
  }
  return {
    rpcUrl: shim.url,
    chain: defineLocalnetChain({ id: chainId, rpcUrl: shim.url }),
    accounts: options.privateKeys ? accountsOf(options.privateKeys) : devAccounts(),
    currency: Addresses.pathUsd,
    stop: once(stop),
  }
}

async function attach(
  rpcUrl: string,
  privateKeys: readonly Hex[] | undefined,
  timeout: number,
): Promise<Localnet> {
  let chainId: number
  try {
    const client = createClient({ transport: http(rpcUrl, { retryCount: 0, timeout }) })
    chainId = Number(await client.request({ method: 'eth_chainId' }))
  } catch {
    // The cause is left out on purpose: viem's errors quote the full URL, secrets included.
    throw new LocalnetStartError(`No JSON-RPC node answers at ${redactUrl(rpcUrl)}.`, {
      metaMessages: ['Check the URL, or omit `rpcUrl` to start a localnet.'],
    })
  }
  return {
    rpcUrl,
    chain: defineLocalnetChain({ id: chainId, rpcUrl }),
    accounts: privateKeys ? accountsOf(privateKeys) : devAccounts(),
    currency: Addresses.pathUsd,
    stop: async () => {},
  }
}

function devAccounts() {
  return Array.from({ length: 10 }, (_, addressIndex) => {
    const account = mnemonicToAccount(devMnemonic, { addressIndex })
    const privateKey =
      `0x${Buffer.from(account.getHdKey().privateKey as Uint8Array).toString('hex')}` as Hex
    return { address: account.address, privateKey }
  })
}

function accountsOf(privateKeys: readonly Hex[]) {
  return privateKeys.map((privateKey) => ({ address: privateKeyToAddress(privateKey), privateKey }))
}

function once(fn: () => Promise<void>) {
  let promise: Promise<void> | undefined
  return () => {
    promise ??= fn()
    return promise
  }
}
