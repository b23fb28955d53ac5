import { type Account, type Address, type Client, isAddressEqual } from 'viem'
import { Actions, type KeyAuthorizationManager, type Account as TempoAccount } from 'viem/tempo'
import { PaymentRefusedError } from '../errors.js'
import { raceSignal } from '../internal/signal.js'

export type KeyAuthorization = NonNullable<
  Awaited<ReturnType<KeyAuthorizationManager.KeyAuthorizationManager['get']>>
>

/** What a payment spends, checked against an access key's limits before it is signed. */
export type KeySpend = {
  /** The payment's cost (a charge's amount, a channel's deposit), in base units of `currency`. */
  amount: bigint
  currency: Address
  /** The most its fee can cost, in base units of `feeToken` (zero when sponsored). */
  fee: bigint
  feeToken: Address | undefined
}

/**
 * Refuses (`PaymentRefusedError`, reason `accessKeyLimit`) a payment that `account`, when it is a
 * `viem/tempo` access key, cannot make on `client`'s chain: the key is revoked or expired, or its
 * remaining spending limit of a token is below what the transaction spends of it, fees included
 * (a limited key's fee is charged against the fee token's limit). A key on chain is judged by the
 * keychain; a key not yet on chain, by the key authorization that would provision it. Called once
 * the payment's fee is known, before anything is signed, so that nothing fails on chain after a
 * fee was spent. Any other account passes.
 */
export async function assertAccessKeyCanPay(
  client: Client & { chain: { id: number } },
  account: Account,
  spend: KeySpend,
) {
  await accessKeyOf(account, client.chain.id)?.assertCanPay(client, spend)
}

/**
 * What is known of an access key's registration on each chain, shared by every provider paying
 * with the same account object.
 */
const keyStates = new WeakMap<Account, Map<number, KeyState>>()

export function accessKeyOf(account: Account, chainId: number) {
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

type KeyState = ReturnType<typeof createKeyState>

/**
 * An access key's registration on chain, and the gate of its payments. Until the key is known to
 * be registered, and while it has an unexpired key authorization to attach, its payments go one
 * at a time: each attaches the authorization, and only one such transaction could land. Once a
 * payment is accepted (or the chain shows the key), later payments neither wait nor attach it.
 * The chain is read once, and again only after a payment whose outcome is unknown.
 *
 * The authorization lives in the account's `keyAuthorizationManager`, from which viem would attach
 * it by itself: it is removed once the key is registered, and put back when `recover` finds the
 * key missing on chain.
 */
function createKeyState(
  key: KeyAuthorizationManager.Key,
  manager: KeyAuthorizationManager.KeyAuthorizationManager | undefined,
) {
  /** Registered (`true`), not registered (`false`), or to be read (`undefined`). */
  let registered: boolean | undefined
  /** The key's authorization, kept to attach it again after `recover`. */
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
  const isRegistered = async (client: Client) => {
    const { address } = await Actions.accessKey.getMetadata(client, {
      account: key.address,
      accessKey: key.accessKey,
    })
    return isAddressEqual(address, key.accessKey)
  }
  const markRegistered = async () => {
    registered = true
    await manager?.remove(key)
  }

  return {
    /**
     * Waits for this key's turn when its authorization must be attached, and returns it with the
     * hooks that end the turn; `undefined` when the payment needs neither.
     */
    async begin(client: Client, signal: AbortSignal) {
      if (registered === true) return undefined
      const keyAuthorization = await authorizationOf()
      if (!keyAuthorization) return undefined
      const ahead = queue
      let end!: () => void
      queue = new Promise<void>((resolve) => {
        end = resolve
      })
      try {
        await raceSignal(ahead, signal)
        registered ??= await isRegistered(client)
        if (registered) await markRegistered()
      } catch (error) {
        end()
        throw error
      }
      if (registered) {
        end()
        return undefined
      }
      return {
        keyAuthorization,
        /** The chain has the key now: later payments neither wait nor attach it. */
        provisioned: () => markRegistered(),
        /** Whether the key was registered is unknown: read the chain next time. */
        unknown() {
          registered = undefined
        },
        /** Lets the next payment of this key go (idempotent). */
        end,
      }
    },
    /**
     * Refuses a payment the key cannot make: judged by the keychain when the key is on chain,
     * else by the authorization that would provision it (none given: nothing to judge by, and
     * the server's answer decides, as `recover`).
     */
    async assertCanPay(client: Client, spend: KeySpend) {
      const refuse = (accessKey: PaymentRefusedError.AccessKeyLimit) => {
        throw new PaymentRefusedError({
          reason: 'accessKeyLimit',
          amount: spend.amount,
          fee: spend.fee,
          currency: spend.currency,
          feeToken: spend.feeToken,
          accessKey,
        })
      }
      const metadata = await Actions.accessKey.getMetadata(client, {
        account: key.address,
        accessKey: key.accessKey,
      })
      if (metadata.isRevoked) return refuse({ revoked: true })
      if (isAddressEqual(metadata.address, key.accessKey)) {
        // A keychain expiry of 0 is none.
        if (metadata.expiry > 0n && metadata.expiry <= BigInt(nowInSeconds()))
          return refuse({ expiredAt: metadata.expiry })
        if (metadata.spendPolicy === 'unlimited') return
        for (const { token, needed } of spendsOf(spend)) {
          const { remaining } = await Actions.accessKey.getRemainingLimit(client, {
            account: key.address,
            accessKey: key.accessKey,
            token,
          })
          if (remaining < needed) return refuse({ token, remaining, needed })
        }
        return
      }
      const given = await givenAuthorization()
      if (!given) return
      const expiredAt = expiryOf(given)
      if (expiredAt !== undefined) return refuse({ expiredAt })
      // No limits: unlimited; otherwise an unlisted token may not be spent at all.
      if (!given.limits) return
      for (const { token, needed } of spendsOf(spend)) {
        const remaining = given.limits
          .filter((limit) => isAddressEqual(limit.token, token))
          .reduce((sum, limit) => sum + limit.limit, 0n)
        if (remaining < needed) return refuse({ token, remaining, needed })
      }
    },
    /** Whether the chain lacks the key and its authorization can be attached again. */
    async recover(client: Client) {
      if (await isRegistered(client)) {
        await markRegistered()
        return false
      }
      const keyAuthorization = await authorizationOf()
      if (!keyAuthorization) return false
      registered = false
      await manager?.set(key, keyAuthorization)
      return true
    },
  }
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

const nowInSeconds = () => Math.floor(Date.now() / 1000)
