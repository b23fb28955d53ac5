import { type Account, type Address, type Client, isAddressEqual } from 'viem'
import { Actions, type KeyAuthorizationManager, type Account as TempoAccount } from 'viem/tempo'
import { PaymentRefusedError } from '../errors.js'
import { raceSignal } from '../internal/signal.js'
import { nowInSeconds } from '../internal/time.js'
import {
  forbiddenCall,
  type KeyAuthorization,
  type KeyCall,
  scopesOf,
  scopesOnChain,
} from './keyScopes.js'

/** What a payment spends, checked against an access key's limits before it is signed. */
export type KeySpend = {
  /** The payment's cost (a charge's amount, a channel's deposit), in base units of `currency`. */
  amount: bigint
  currency: Address
  /** The most its fee can cost, in base units of `feeToken` (zero when sponsored). */
  fee: bigint
  feeToken: Address | undefined
  /** The calls the transaction makes (a charge's transfers, the reserve's `open` or `topUp`). */
  calls: readonly KeyCall[]
}

/**
 * The account a payment transaction of `account` is prepared with: for an access key, one whose
 * `keyAuthorizationManager` holds `keyAuthorization` for this transaction alone (or nothing), so
 * that viem attaches exactly that, never the account's own authorization by itself. If the node
 * refuses it because the key is on chain (`KeyAlreadyExists`), viem removes it from this manager
 * and prepares the transaction again without it.
 */
export function withKeyAuthorization(
  account: Account,
  keyAuthorization: KeyAuthorization | undefined,
): Account {
  if ((account as Partial<TempoAccount.AccessKeyAccount>).source !== 'accessKey') return account
  let attached = keyAuthorization
  const manager: KeyAuthorizationManager.KeyAuthorizationManager = {
    get: async () => attached,
    set: async () => {},
    remove: async () => {
      attached = undefined
    },
  }
  return { ...account, keyAuthorizationManager: manager } as unknown as Account
}

/**
 * What is known of an access key's registration on each chain, shared by every provider paying
 * with the same account object.
 */
const keyStates = new WeakMap<Account, Map<number, KeyState>>()

/**
 * The registration state of `account`'s key on `chainId`; `undefined` unless it is an access key.
 * Resolved once per provider, in its `Payer` (see `payerOf`).
 */
export function accessKeyOf(account: Account, chainId: number): KeyState | undefined {
  const accessKey = account as Partial<TempoAccount.AccessKeyAccount>
  if (accessKey.source !== 'accessKey' || !accessKey.accessKeyAddress) return undefined
  const states = keyStates.get(account) ?? new Map<number, KeyState>()
  keyStates.set(account, states)
  let state = states.get(chainId)
  if (!state) {
    state = createKeyState(
      { address: account.address, accessKey: accessKey.accessKeyAddress, chainId },
      accessKey.keyAuthorizationManager,
    )
    states.set(chainId, state)
  }
  return state
}

export type KeyState = ReturnType<typeof createKeyState>

/** The key's entry in the keychain, as `Actions.accessKey.getMetadata` reads it. */
export type KeychainEntry = Actions.accessKey.getMetadata.ReturnValue

/** A payment's place in its key's line, while it attaches the key's authorization. */
export type KeyTurn = {
  keyAuthorization: KeyAuthorization
  /** The chain has the key now: later payments neither wait nor attach it. */
  provisioned(): Promise<void>
  /** Whether the key was registered is unknown: read the chain next time. */
  unknown(): void
  /** Lets the next payment of this key go (idempotent). */
  end(): void
}

/**
 * What `begin` gives a payment: its `turn`, if it attaches the key's authorization, and the
 * keychain entry `begin` read to know that, if it read one, for the payment's limit check to use
 * rather than read it again.
 */
export type KeyBegun = { turn?: KeyTurn | undefined; keychain?: KeychainEntry | undefined }

/**
 * An access key's registration on chain, and the gate of its payments (charges, channel opens
 * and top-ups alike). The keychain is read before a payment while the key's registration is not
 * known: the key on chain, nothing is attached; missing, the payment carries the key's
 * authorization, and such payments go one at a time, since only one such transaction could land.
 * Once a payment is accepted (or the chain shows the key), the key is remembered as provisioned:
 * later payments neither wait nor attach it. The chain is read again only after a payment whose
 * outcome is unknown, or when the server says the key is not provisioned (`recover`).
 */
function createKeyState(
  key: KeyAuthorizationManager.Key,
  manager: KeyAuthorizationManager.KeyAuthorizationManager | undefined,
) {
  /** Registered (`true`), not registered (`false`), or to be read (`undefined`). */
  let registered: boolean | undefined
  /** The key's authorization, read once from the account. */
  let authorization: { value: KeyAuthorization | undefined } | undefined
  /** Settles when the payment ahead in line has ended. */
  let queue: Promise<void> = Promise.resolve()

  /** The key's authorization as given, expired or not. */
  const givenAuthorization = async () => {
    authorization ??= { value: (await manager?.get(key)) ?? undefined }
    return authorization.value
  }
  const authorizationOf = async () => {
    const value = await givenAuthorization()
    return value && expiryOf(value) === undefined ? value : undefined
  }
  const readKeychain = (client: Client) =>
    Actions.accessKey.getMetadata(client, { account: key.address, accessKey: key.accessKey })
  const isOnChain = ({ address }: KeychainEntry) => isAddressEqual(address, key.accessKey)
  const markRegistered = async () => {
    registered = true
    // viem, used elsewhere with this account, would otherwise attach it by itself.
    await manager?.remove(key)
  }

  return {
    /**
     * Waits for this key's turn when its authorization must be attached, and returns it with the
     * hooks that end the turn, and the keychain entry read meanwhile; `undefined` when the
     * payment needs neither wait nor read.
     */
    async begin(client: Client, signal: AbortSignal): Promise<KeyBegun | undefined> {
      if (registered === true) return undefined
      const keyAuthorization = await authorizationOf()
      if (!keyAuthorization) return undefined
      const ahead = queue
      let end!: () => void
      queue = new Promise<void>((resolve) => {
        end = resolve
      })
      let keychain: KeychainEntry | undefined
      try {
        await raceSignal(ahead, signal)
        if (registered === undefined) {
          keychain = await readKeychain(client)
          registered = isOnChain(keychain)
        }
        if (registered) await markRegistered()
      } catch (error) {
        end()
        throw error
      }
      if (registered) {
        end()
        return { keychain }
      }
      const turn: KeyTurn = {
        keyAuthorization,
        provisioned: () => markRegistered(),
        unknown() {
          registered = undefined
        },
        end,
      }
      return { turn, keychain }
    },
    /**
     * Refuses a payment the key cannot make: judged by the keychain when the key is on chain,
     * else by the authorization that would provision it (none given: nothing to judge by, and
     * the server's answer decides, as `recover`). The keychain entry is read unless `keychain`
     * is the one `begin` read for this payment.
     */
    async assertCanPay(client: Client, spend: KeySpend, keychain?: KeychainEntry) {
      const metadata = keychain ?? (await readKeychain(client))
      const refusal =
        metadata.isRevoked || isOnChain(metadata)
          ? await keychainRefusal(client, key, metadata, spend)
          : authorizationRefusal(await givenAuthorization(), spend)
      if (refusal)
        throw new PaymentRefusedError({
          reason: 'accessKeyLimit',
          amount: spend.amount,
          fee: spend.fee,
          currency: spend.currency,
          feeToken: spend.feeToken,
          accessKey: refusal,
        })
    },
    /**
     * After the server said the key is not provisioned: whether the chain really lacks it and
     * its authorization can be attached to a fresh payment. A key on chain is never authorized
     * again (the node refuses it with `KeyAlreadyExists`; anvil drops the transaction).
     */
    async recover(client: Client) {
      if (isOnChain(await readKeychain(client))) {
        await markRegistered()
        return false
      }
      if (!(await authorizationOf())) return false
      registered = false
      return true
    },
  }
}

/**
 * Why the keychain refuses `spend` of a key on chain (or revoked): revoked, expired, a call out
 * of its scopes, or a token's remaining limit below what is spent; `undefined` if it may pay.
 */
async function keychainRefusal(
  client: Client,
  key: KeyAuthorizationManager.Key,
  metadata: KeychainEntry,
  spend: KeySpend,
): Promise<PaymentRefusedError.AccessKeyLimit | undefined> {
  if (metadata.isRevoked) return { revoked: true }
  // A keychain expiry of 0 is none.
  if (metadata.expiry > 0n && metadata.expiry <= BigInt(nowInSeconds()))
    return { expiredAt: metadata.expiry }
  const forbidden = forbiddenCall(spend.calls, await scopesOnChain(client, key))
  if (forbidden) return forbidden
  if (metadata.spendPolicy === 'unlimited') return undefined
  for (const { token, needed } of spendsOf(spend)) {
    const { remaining } = await Actions.accessKey.getRemainingLimit(client, {
      account: key.address,
      accessKey: key.accessKey,
      token,
    })
    if (remaining < needed) return { token, remaining, needed }
  }
  return undefined
}

/**
 * Why the authorization that would provision a key not yet on chain refuses `spend`: expired, a
 * call out of its scopes, or a token's limit below what is spent; `undefined` if it may pay, or
 * if no authorization was given (nothing to judge by: the server's answer decides).
 */
function authorizationRefusal(
  given: KeyAuthorization | undefined,
  spend: KeySpend,
): PaymentRefusedError.AccessKeyLimit | undefined {
  if (!given) return undefined
  const expiredAt = expiryOf(given)
  if (expiredAt !== undefined) return { expiredAt }
  const forbidden = forbiddenCall(spend.calls, scopesOf(given))
  if (forbidden) return forbidden
  // No limits: unlimited; otherwise an unlisted token may not be spent at all.
  if (!given.limits) return undefined
  for (const { token, needed } of spendsOf(spend)) {
    const remaining = given.limits
      .filter((limit) => isAddressEqual(limit.token, token))
      .reduce((sum, limit) => sum + limit.limit, 0n)
    if (remaining < needed) return { token, remaining, needed }
  }
  return undefined
}

/** When an authorization expired (unix seconds), or `undefined` if it has not (or never does). */
function expiryOf({ expiry }: KeyAuthorization) {
  if (expiry === undefined || expiry === null) return undefined
  return BigInt(expiry) <= BigInt(nowInSeconds()) ? BigInt(expiry) : undefined
}

/** What a payment spends of each token: its amount, and its fee in the fee token. */
function spendsOf({ amount, currency, fee, feeToken }: KeySpend) {
  const sameToken = !!feeToken && isAddressEqual(feeToken, currency)
  const spends = [{ token: currency, needed: amount + (sameToken ? fee : 0n) }]
  if (fee > 0n && feeToken && !sameToken) spends.push({ token: feeToken, needed: fee })
  return spends
}
