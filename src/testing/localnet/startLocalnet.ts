import { type Address, createClient, type Hex, http } from 'viem'
import { mnemonicToAccount, privateKeyToAddress } from 'viem/accounts'
import { getBlock } from 'viem/actions'
import { Addresses } from 'viem/tempo'
import { BaseError } from '../../errors.js'
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
  /**
   * Loopback port of the RPC URL (the reserve shim in front of anvil, which listens on a free port
   * of its own). @default 0 (a free port)
   */
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
  /**
   * Moves the node's clock `seconds` ahead and mines a block at the new time (anvil's
   * `evm_increaseTime` + `evm_mine`), e.g. past TIP-1034's 900 s close grace period. `chain`
   * reckons expiring nonces by the node's latest block, so transactions stay valid afterwards.
   * Resolves to the new block's timestamp (unix seconds). Needs a node with anvil's methods.
   */
  increaseTime(seconds: number): Promise<number>
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
      port: 0,
      startTimeout,
    })
    await installReserve(createClient({ transport: http(anvil.rpcUrl) }))
    shim = await startReserveShim({ upstream: anvil.rpcUrl, port: options.port }).catch(
      (error: NodeJS.ErrnoException) => {
        throw new LocalnetStartError(
          `Cannot listen on 127.0.0.1:${options.port}${error.code === 'EADDRINUSE' ? ': the port is taken' : ''}.`,
          { cause: error, metaMessages: ['Pick another port, or omit `port` for a free one.'] },
        )
      },
    )
    // The URL handed out must work: fetch refuses some ports outright (the Fetch standard's
    // "bad ports": 1, 7, 9, …, 6000, …) though a server can listen on them.
    await createClient({ transport: http(shim.url, { retryCount: 0 }) }).request({
      method: 'eth_chainId',
    })
  } catch (error) {
    await stop()
    throw error
  }
  return {
    rpcUrl: shim.url,
    chain: defineLocalnetChain({ id: chainId, rpcUrl: shim.url }),
    accounts: options.privateKeys ? accountsOf(options.privateKeys) : devAccounts(),
    currency: Addresses.pathUsd,
    increaseTime: clockOf(anvil.rpcUrl),
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
    increaseTime: clockOf(rpcUrl),
    stop: async () => {},
  }
}

/** `Localnet.increaseTime` on the node at `rpcUrl`. */
function clockOf(rpcUrl: string) {
  const client = createClient({ transport: http(rpcUrl, { retryCount: 0 }) })
  return async (seconds: number) => {
    if (!Number.isSafeInteger(seconds) || seconds < 0)
      throw new RangeError(`increaseTime takes whole seconds >= 0, not ${seconds}.`)
    await client.request({ method: 'evm_increaseTime', params: [seconds] } as never)
    await client.request({ method: 'evm_mine', params: [] } as never)
    const { timestamp } = await getBlock(client, { blockTag: 'latest' })
    return Number(timestamp)
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
