import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { KeyAuthorization } from 'ox/tempo'
import { parse as parseToml } from 'smol-toml'
import type { Address, Hex } from 'viem'
import { Account } from 'viem/tempo'
import { z } from 'zod'
import { BaseError } from '../errors.js'

const hex = (bytes?: number) =>
  z
    .string()
    .trim()
    .regex(bytes ? new RegExp(`^0x[0-9a-fA-F]{${bytes * 2}}$`) : /^0x[0-9a-fA-F]*$/)
    .transform((value) => value as Hex)
const address = hex(20).transform((value) => value as Address)

/** One `[[keys]]` entry of `keys.toml`, as the Tempo CLI writes it. */
const keyEntrySchema = z.object({
  wallet_type: z.enum(['local', 'passkey']).default('local'),
  wallet_address: address.optional(),
  chain_id: z.number().int().positive(),
  key_type: z.enum(['secp256k1', 'p256', 'webauthn']).default('secp256k1'),
  key_address: address.optional(),
  key: hex(32).optional(),
  key_authorization: hex().optional(),
  expiry: z.number().int().nonnegative().optional(),
  limits: z
    .array(z.object({ currency: address, limit: z.union([z.string(), z.number()]) }))
    .default([]),
})
const keysFileSchema = z.object({ keys: z.array(keyEntrySchema).default([]) })

export type KeyEntry = z.infer<typeof keyEntrySchema>

export type KeyDiscoveryErrorType = KeyDiscoveryError & { name: 'KeyDiscoveryError' }

/** A key source exists but cannot be used. Never quotes key material. */
export class KeyDiscoveryError extends BaseError {
  constructor(shortMessage: string, { metaMessages }: { metaMessages?: string[] } = {}) {
    super(shortMessage, { metaMessages, name: 'KeyDiscoveryError' })
  }
}

export type DiscoverAccountParameters = {
  /** Chain the payment is for: only keys for it are used. */
  chainId: number
  /** Currency of the payment: a key with spending limits must have one for it. */
  currency?: Address | undefined
  /** Environment to read. @default process.env */
  env?: Record<string, string | undefined> | undefined
}

/**
 * Finds a key that can pay on `chainId`, the way Tempo's tools do:
 *
 * 1. `TEMPO_PRIVATE_KEY` (trimmed): that key signs directly;
 * 2. else `$TEMPO_HOME/wallet/keys.toml` (`TEMPO_HOME` defaults to `~/.tempo`): the `[[keys]]`
 *    entries for this chain with an inline `key`, not expired, and with no spending `limits` or
 *    one for `currency`; a passkey wallet's key first, else the first such key. With a
 *    `wallet_address`, the key is an access key signing for that wallet (its `key_authorization`
 *    is attached until the chain has registered it); without, it signs directly.
 *
 * Returns `undefined` when there is no key at all; throws `KeyDiscoveryError` for a source that
 * exists but cannot be used (a malformed key or file), without quoting key material.
 * {@link discoverKey} also says why each key it found was passed over.
 *
 * @example
 * ```ts
 * import { discoverAccount } from 'viem-mpp/node'
 *
 * const account = await discoverAccount({ chainId: 4217 })
 * ```
 */
export async function discoverAccount(parameters: DiscoverAccountParameters) {
  return (await discoverKey(parameters)).account
}

/** What {@link discoverKey} found. */
export type DiscoveredKey = {
  /** The account that pays, if a key fits. */
  account: ReturnType<typeof accountOf> | undefined
  /** Where keys were looked for (`TEMPO_PRIVATE_KEY` first, then this file). */
  path: string
  /**
   * The `keys.toml` entries that do not fit, each as `keys[i] (its addresses): why`; never key
   * material. Empty when a key fits, or none was found.
   */
  passedOver: string[]
}

/**
 * {@link discoverAccount}, and why each key in `keys.toml` was passed over: for another chain,
 * expired, spending limits for other currencies only, no inline key (see {@link keyMismatch}).
 *
 * @example
 * ```ts
 * import { discoverKey } from 'viem-mpp/node'
 *
 * const { account, passedOver } = await discoverKey({ chainId: 4217 })
 * ```
 */
export async function discoverKey({
  chainId,
  currency,
  env = process.env,
}: DiscoverAccountParameters): Promise<DiscoveredKey> {
  const path = keysTomlPath(env)
  const privateKey = env.TEMPO_PRIVATE_KEY?.trim()
  if (privateKey) {
    if (!hex(32).safeParse(privateKey).success)
      throw new KeyDiscoveryError('TEMPO_PRIVATE_KEY is not a 32-byte hex private key.', {
        metaMessages: ['Set it to 0x followed by 64 hex digits, or unset it to use keys.toml.'],
      })
    return { account: Account.fromSecp256k1(privateKey as Hex), path, passedOver: [] }
  }

  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      return { account: undefined, path, passedOver: [] }
    const { code } = error as NodeJS.ErrnoException
    throw new KeyDiscoveryError(`${path} cannot be read${code ? ` (${code})` : ''}.`, {
      metaMessages: ['Make it a readable file, or set TEMPO_PRIVATE_KEY instead.'],
    })
  }
  const entries = parseKeysToml(text, path)
  const wanted = { chainId, currency, now: Math.floor(Date.now() / 1000) }
  const entry = selectKey(entries, wanted)
  if (entry) return { account: accountOf(entry), path, passedOver: [] }
  const passedOver = entries.map(
    (entry, index) => `${nameOf(entry, index)}: ${keyMismatch(entry, wanted)}`,
  )
  return { account: undefined, path, passedOver }
}

/** Where `keys.toml` lives: `$TEMPO_HOME/wallet/keys.toml`, `TEMPO_HOME` defaulting to `~/.tempo`. */
export function keysTomlPath(env: Record<string, string | undefined> = process.env) {
  return join(env.TEMPO_HOME || join(homedir(), '.tempo'), 'wallet', 'keys.toml')
}

/** The `[[keys]]` entries of a `keys.toml` text. */
export function parseKeysToml(text: string, path = 'keys.toml'): KeyEntry[] {
  let document: unknown
  try {
    document = parseToml(text)
  } catch (error) {
    // The parser's message quotes the offending line, which may hold a key: keep only where.
    const { line } = error as { line?: number }
    throw new KeyDiscoveryError(`${path} is not valid TOML${line ? ` (line ${line})` : ''}.`)
  }
  const parsed = keysFileSchema.safeParse(document)
  if (!parsed.success)
    throw new KeyDiscoveryError(`${path} has a malformed [[keys]] entry.`, {
      metaMessages: parsed.error.issues.map(
        (issue) => `keys.${issue.path.join('.')}: ${issue.message}`,
      ),
    })
  return parsed.data.keys
}

/** The entry that pays on `chainId` in `currency`, by the rules of {@link discoverAccount}. */
export function selectKey(
  entries: readonly KeyEntry[],
  wanted: { chainId: number; currency?: Address | undefined; now: number },
): KeyEntry | undefined {
  const usable = entries.filter((entry) => keyMismatch(entry, wanted) === undefined)
  return usable.find((entry) => entry.wallet_type === 'passkey') ?? usable[0]
}

/**
 * Why `entry` cannot pay on `chainId` in `currency` at `now` (seconds), or `undefined` when it
 * can. Names chains, times and currencies only, never key material.
 */
export function keyMismatch(
  entry: KeyEntry,
  { chainId, currency, now }: { chainId: number; currency?: Address | undefined; now: number },
): string | undefined {
  if (entry.chain_id !== chainId) return `for chain ${entry.chain_id}, not ${chainId}`
  if (entry.key === undefined) return 'no inline key (its key is held elsewhere, e.g. by a passkey)'
  if (entry.key_type === 'webauthn') return 'a WebAuthn key, which cannot sign here'
  if (entry.expiry && entry.expiry <= now)
    return `expired at ${new Date(entry.expiry * 1000).toISOString()}`
  if (
    currency &&
    entry.limits.length > 0 &&
    !entry.limits.some((limit) => limit.currency.toLowerCase() === currency.toLowerCase())
  )
    return `spending limits for ${entry.limits.map((limit) => limit.currency).join(', ')} only, not ${currency}`
  return undefined
}

/** How an entry is named in messages: its index and public addresses. */
function nameOf(entry: KeyEntry, index: number) {
  const addresses = [
    entry.key_address && `key ${entry.key_address}`,
    entry.wallet_address && `wallet ${entry.wallet_address}`,
  ].filter(Boolean)
  return `keys[${index}]${addresses.length ? ` (${addresses.join(', ')})` : ''}`
}

function accountOf(entry: KeyEntry) {
  const key = entry.key as Hex
  const access = entry.wallet_address
  const keyAuthorization = entry.key_authorization
    ? (KeyAuthorization.deserialize(entry.key_authorization) as KeyAuthorization.Signed)
    : undefined
  if (entry.key_type === 'p256')
    return access ? Account.fromP256(key, { access, keyAuthorization }) : Account.fromP256(key)
  return access
    ? Account.fromSecp256k1(key, { access, keyAuthorization })
    : Account.fromSecp256k1(key)
}
