/**
 * What the payer processes of the tests (test/fixtures/sessionRun.ts) and of the benchmarks
 * (bench/payer.ts) share: their leading arguments, and the session they pay with.
 */
import { type Chain, createClient, type Hex, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import {
  type ChannelStore,
  memoryChannelStore,
  type SessionProvider,
  session,
} from '../../src/index.js'
import {
  fileChannelStore,
  type RedisChannelStoreConfig,
  redisChannelStore,
} from '../../src/node/index.js'
import { defineLocalnetChain } from '../../src/testing/index.js'

/** A payer process's arguments: the seven every one takes, then its own (`rest`). */
export type PayerArguments = {
  /** The paid server's URL. */
  paidUrl: string
  /** The localnet's RPC URL. */
  rpcUrl: string
  chainId: number
  privateKey: Hex
  /** `memory`, a `redis://` URL, or a `fileChannelStore` path. */
  store: string
  /** How many calls to make. */
  calls: number
  /** How many of them are in flight at once. */
  inFlight: number
  rest: string[]
}

/**
 * Reads a payer process's arguments: the paid URL, the localnet's RPC URL, its chain id, the
 * payer's private key, the store, the number of calls and how many are in flight at once.
 *
 * @example
 * ```ts
 * const { paidUrl, calls, inFlight, rest: [ending = 'exit'] } = payerArguments(process.argv.slice(2))
 * ```
 */
export function payerArguments(argv: readonly string[]): PayerArguments {
  const [
    paidUrl = '',
    rpcUrl = '',
    chainId = '',
    privateKey = '',
    store = '',
    calls = '1',
    inFlight = '1',
    ...rest
  ] = argv
  return {
    paidUrl,
    rpcUrl,
    chainId: Number(chainId),
    privateKey: privateKey as Hex,
    store,
    calls: Number(calls),
    inFlight: Number(inFlight),
    rest,
  }
}

/**
 * The session a payer process pays with, on the store its arguments name (`redis`'s other
 * options for a Redis store), with the store to close at the end.
 *
 * @example
 * ```ts
 * const { provider, store, chain } = payerSession(args, { prefix: process.env.VIEM_MPP_TEST_PREFIX })
 * ```
 */
export function payerSession(
  { rpcUrl, chainId, privateKey, store: argument }: PayerArguments,
  redis: Omit<RedisChannelStoreConfig, 'redis'> = {},
): {
  provider: SessionProvider
  store: ChannelStore & { close?: () => Promise<void> }
  chain: Chain
} {
  const chain = defineLocalnetChain({ id: chainId, rpcUrl })
  const store =
    argument === 'memory'
      ? memoryChannelStore()
      : /^rediss?:/.test(argument)
        ? redisChannelStore({ ...redis, redis: argument })
        : fileChannelStore(argument)
  const provider = session({
    account: privateKeyToAccount(privateKey),
    client: createClient({ chain, transport: http(rpcUrl) }),
    store,
  })
  return { provider, store, chain }
}
