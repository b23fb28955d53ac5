import { PublicKey } from 'ox'
import { KeyAuthorization, SignatureEnvelope } from 'ox/tempo'
import { type Account, type Address, getAddress, isAddress, isAddressEqual, maxUint128 } from 'viem'
import { Account as TempoAccount, WebCryptoP256 } from 'viem/tempo'
import { nowInSeconds } from '../internal/time.js'
import { AccessKeyError } from './errors.js'
import {
  type AccessKeyStorage,
  indexedDbAccessKeyStorage,
  type StoredAccessKey,
} from './storage.js'

/** The default spending limit of an in-page access key: 1 USD of a 6-decimal TIP-20 token. */
export const defaultAccessKeyLimit = 1_000_000n

/** The default lifetime of an in-page access key, in seconds: one day. */
export const defaultAccessKeyLifetime = 86_400

/**
 * The longest an in-page access key may live, in seconds: one year. Its authorization stays valid
 * on chain until it expires, even once the page has forgotten it; and an expiry beyond this is
 * most often milliseconds given for seconds.
 */
const maxAccessKeyLifetime = 365 * 86_400

export type CreateAccessKeyParameters = {
  /**
   * The user's wallet account, which signs the key authorization once: a local account with
   * `sign({ hash })` — a `viem/tempo` root account (a passkey from `Account.fromWebAuthnP256`,
   * `Account.fromSecp256k1`, …) or viem's `privateKeyToAccount`. JSON-RPC (EIP-1193) accounts
   * cannot sign one (`AccessKeyError`, `rootCannotSign`).
   */
  root: Account
  /** The chain the key may pay on. */
  chainId: number
  /** The TIP-20 token the key may spend (the payments' currency, which also pays fees). */
  currency: Address
  /**
   * The most the key may spend of `currency` over its life, in base units, fees included: a
   * session's deposits and top-ups count, and so does a charge. @default {@link defaultAccessKeyLimit}
   */
  limit?: bigint | undefined
  /**
   * When the key expires, in unix seconds, at most one year ahead.
   * @default now + {@link defaultAccessKeyLifetime}
   */
  expiry?: number | undefined
  /** Where the key is kept. @default indexedDbAccessKeyStorage() */
  storage?: AccessKeyStorage | undefined
}

export type LoadAccessKeyParameters = {
  /** The root wallet's address. */
  root: Address
  chainId: number
  /** @default indexedDbAccessKeyStorage() */
  storage?: AccessKeyStorage | undefined
}

/** An in-page access key authorized by a root wallet. */
export type BrowserAccessKey = {
  /**
   * The `viem/tempo` access-key account: it signs for `root`, and carries the key authorization
   * until the chain has registered the key (the first payment provisions it). Pass it as
   * `account` to `session()`, `charge()` or `tempo()`: a session channel opened with it has the
   * access key as its authorized signer, so vouchers need no wallet signature.
   */
  account: TempoAccount.AccessKeyAccount
  /** The root wallet the key signs for. */
  root: Address
  chainId: number
  /** When the key expires, in unix seconds. */
  expiry: number
  /** What the key may spend, per token, in base units (fees included). */
  limits: readonly { token: Address; limit: bigint }[]
  /**
   * Deletes the key from its storage: this page can no longer sign with it (its private key was
   * never readable, so no copy exists). Its authorization stays valid on chain until `expiry`, with
   * no one able to use it. A session channel it opened stays open: close it first
   * (`provider.close()`) to get the deposit back at once, since without the key no voucher (and
   * no cooperative close) can be signed for it.
   */
  forget(): Promise<void>
}

/**
 * Creates a non-extractable WebCrypto P256 access key in the page, has `root` (the user's wallet)
 * sign its key authorization once — limited to `limit` of `currency` on `chainId` until `expiry` —
 * and keeps both in `storage` (IndexedDB by default), replacing any earlier key of the same root
 * and chain. No transaction is sent: the authorization rides in the key's first payment, which
 * provisions it on chain. If the wallet refuses, its error is thrown as is and nothing is stored.
 *
 * @example
 * ```ts
 * import { createClient, http } from 'viem'
 * import { createAccessKey, localStorageChannelStore, mppHttp, session } from 'viem-mpp'
 *
 * const key = await createAccessKey({
 *   root: wallet,                  // e.g. a passkey: Account.fromWebAuthnP256(credential)
 *   chainId: chain.id,
 *   currency: '0x20c0000000000000000000000000000000000000',
 *   limit: 5_000_000n,             // 5 USD, fees included
 *   expiry: Math.floor(Date.now() / 1000) + 7 * 86_400,
 * })
 * const provider = session({
 *   account: key.account,
 *   client: createClient({ chain, transport: http() }),
 *   store: localStorageChannelStore(),
 * })
 * ```
 */
export async function createAccessKey({
  root,
  chainId,
  currency,
  limit = defaultAccessKeyLimit,
  expiry = nowInSeconds() + defaultAccessKeyLifetime,
  storage,
}: CreateAccessKeyParameters): Promise<BrowserAccessKey> {
  const sign = signerOf(root)
  if (!Number.isSafeInteger(chainId) || chainId <= 0)
    throw invalid(`chainId must be a positive integer, not ${chainId}.`)
  if (!isAddress(currency)) throw invalid('currency must be an address.')
  if (limit <= 0n) throw invalid(`limit must be above 0, not ${limit}.`)
  // No TIP-20 amount exceeds uint128: a higher limit is a mistake, not "unlimited".
  if (limit > maxUint128) throw invalid(`limit must be at most 2^128 - 1, not ${limit}.`)
  if (!Number.isSafeInteger(expiry) || expiry <= nowInSeconds())
    throw invalid(`expiry must be a future unix time in seconds, not ${expiry}.`)
  if (expiry > nowInSeconds() + maxAccessKeyLifetime)
    throw invalid(
      `expiry must be at most one year ahead (a unix time in seconds, not milliseconds), not ${expiry}.`,
    )
  if (!globalThis.crypto?.subtle)
    throw new AccessKeyError({
      reason: 'unsupportedRuntime',
      details: 'crypto.subtle is not available (a page must be served over HTTPS or localhost).',
    })
  const keys = storage ?? indexedDbAccessKeyStorage()

  const keyPair = await WebCryptoP256.createKeyPair({ extractable: false })
  const publicKey = PublicKey.toHex(keyPair.publicKey)
  const keyAuthorization = (await TempoAccount.signKeyAuthorization(sign, {
    key: { publicKey, type: 'p256' },
    chainId: BigInt(chainId),
    expiry,
    limits: [{ token: getAddress(currency), limit }],
  })) as KeyAuthorization.Signed
  // A wallet that signed with another account would leave a key no payment could use.
  if (!isSignedBy(keyAuthorization, root.address))
    throw new AccessKeyError({
      reason: 'rootCannotSign',
      details: "The wallet's signature is not the root account's.",
    })
  const stored: StoredAccessKey = {
    root: getAddress(root.address),
    privateKey: keyPair.privateKey,
    publicKey,
    keyAuthorization: KeyAuthorization.serialize(keyAuthorization),
  }
  const id = idOf(stored.root, chainId)
  await keys.set(id, stored)
  return restore(stored, stored.root, chainId, keys, id)
}

/**
 * The access key `createAccessKey` kept for `root` on `chainId`, if there is one that has not
 * expired (an expired key is deleted). Throws `AccessKeyError` (`corrupt`) when what is stored is
 * not such a key, leaving it as it is.
 *
 * @example
 * ```ts
 * import { createAccessKey, loadAccessKey } from 'viem-mpp'
 *
 * const key =
 *   (await loadAccessKey({ root: wallet.address, chainId })) ??
 *   (await createAccessKey({ root: wallet, chainId, currency }))
 * ```
 */
export async function loadAccessKey({
  root,
  chainId,
  storage,
}: LoadAccessKeyParameters): Promise<BrowserAccessKey | undefined> {
  const keys = storage ?? indexedDbAccessKeyStorage()
  const id = idOf(getAddress(root), chainId)
  const stored = await keys.get(id)
  if (!stored) return undefined
  const key = (() => {
    try {
      return restore(stored, getAddress(root), chainId, keys, id)
    } catch (error) {
      // Only the first line: viem and ox errors append their own version and docs lines.
      const why = (error as Error).message.split('\n')[0]
      throw new AccessKeyError({ reason: 'corrupt', details: `Stored as "${id}": ${why}` })
    }
  })()
  if (key.expiry > nowInSeconds()) return key
  await keys.delete(id)
  return undefined
}

/**
 * Deletes the access key kept for `root` on `chainId` (see {@link BrowserAccessKey.forget}),
 * whatever is stored, a corrupt entry included.
 *
 * @example
 * ```ts
 * import { forgetAccessKey } from 'viem-mpp'
 *
 * await forgetAccessKey({ root: wallet.address, chainId })
 * ```
 */
export async function forgetAccessKey({ root, chainId, storage }: LoadAccessKeyParameters) {
  const keys = storage ?? indexedDbAccessKeyStorage()
  await keys.delete(idOf(getAddress(root), chainId))
}

/** The root account, as the local account viem/tempo signs key authorizations with. */
function signerOf(root: Account) {
  const refuse = (details: string) => new AccessKeyError({ reason: 'rootCannotSign', details })
  if (root.type !== 'local') throw refuse(`It is a ${root.type} account.`)
  if (root.source === 'accessKey') throw refuse('It is itself an access key.')
  if (!root.sign) throw refuse('It has no sign({ hash }).')
  return root
}

function restore(
  stored: StoredAccessKey,
  root: Address,
  chainId: number,
  storage: AccessKeyStorage,
  id: string,
): BrowserAccessKey {
  const publicKey = PublicKey.fromHex(stored.publicKey)
  const keyAuthorization = KeyAuthorization.deserialize(
    stored.keyAuthorization,
  ) as KeyAuthorization.Signed
  if (!isAddressEqual(stored.root, root)) throw new Error('The key signs for another root.')
  if (!keyAuthorization.signature) throw new Error('The key authorization is not signed.')
  // Another script of the page may have written the record: only the root's signature counts.
  if (!isSignedBy(keyAuthorization, root))
    throw new Error('The key authorization is not signed by the root account.')
  if (BigInt(keyAuthorization.chainId) !== BigInt(chainId))
    throw new Error('The key authorization is for another chain.')
  if (!(stored.privateKey instanceof CryptoKey))
    throw new Error('The private key is not a CryptoKey.')
  // Throws when the authorization is not for this key.
  const account = TempoAccount.fromWebCryptoP256(
    { privateKey: stored.privateKey, publicKey },
    { access: stored.root, keyAuthorization },
  )
  return {
    account,
    root: stored.root,
    chainId,
    expiry: Number(keyAuthorization.expiry ?? 0),
    limits: (keyAuthorization.limits ?? []).map(({ token, limit }) => ({ token, limit })),
    forget: () => storage.delete(id),
  }
}

function isSignedBy(keyAuthorization: KeyAuthorization.Signed, address: Address) {
  try {
    return SignatureEnvelope.verify(keyAuthorization.signature, {
      address,
      payload: KeyAuthorization.getSignPayload(keyAuthorization),
    })
  } catch {
    // An envelope type that cannot be verified here (keychain, configurable).
    return false
  }
}

const idOf = (root: Address, chainId: number) => `accessKey:${chainId}:${root.toLowerCase()}`

const invalid = (details: string) => new AccessKeyError({ reason: 'invalidParameter', details })
