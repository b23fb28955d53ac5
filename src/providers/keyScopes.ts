/**
 * An access key's call scopes: what its authorization or the keychain allows it to
 * call, and the first call of a payment they do not allow, named as the refusal shows it.
 */
import {
  type Address,
  type Client,
  decodeFunctionData,
  getAddress,
  type Hex,
  isAddressEqual,
  isHex,
  size,
  slice,
  toFunctionSelector,
} from 'viem'
import { readContract } from 'viem/actions'
import { Abis, Addresses, Hardfork, type KeyAuthorizationManager, Selectors } from 'viem/tempo'
import type { PaymentRefusedError } from '../errors.js'

export type KeyAuthorization = NonNullable<
  Awaited<ReturnType<KeyAuthorizationManager.KeyAuthorizationManager['get']>>
>

/** One call of a payment transaction, checked against an access key's call scopes. */
export type KeyCall = { to: Address; data: Hex }

/** One allowed call: a target, with any function (no `selector`), and any recipient (none listed). */
export type CallScope = {
  target: Address
  selector?: Hex | undefined
  recipients?: readonly Address[]
}

/**
 * The key's call scopes in the keychain; `undefined` when it may make any call. Chains before T3
 * have no call scopes.
 */
export async function scopesOnChain(
  client: Client,
  key: KeyAuthorizationManager.Key,
): Promise<CallScope[] | undefined> {
  const { hardfork } = (client.chain ?? {}) as { hardfork?: string }
  if (hardfork && Hardfork.lt(hardfork, 't3')) return undefined
  const [isScoped, scopes] = await readContract(client, {
    address: Addresses.accountKeychain,
    abi: Abis.accountKeychain,
    functionName: 'getAllowedCalls',
    args: [key.address, key.accessKey],
  })
  if (!isScoped) return undefined
  return scopes.flatMap(({ target, selectorRules }) =>
    selectorRules.length === 0
      ? [{ target }]
      : selectorRules.map(({ selector, recipients }) => ({ target, selector, recipients })),
  )
}

/** The call scopes of a key authorization; `undefined` (none listed) allows any call. */
export function scopesOf({ scopes }: KeyAuthorization): CallScope[] | undefined {
  return scopes?.map(({ address, selector, recipients }) => ({
    target: address,
    // An authorization may name its function by signature rather than by selector.
    selector:
      selector === undefined
        ? undefined
        : isHex(selector) && size(selector) === 4
          ? selector
          : toFunctionSelector(selector),
    ...(recipients ? { recipients } : {}),
  }))
}

/**
 * The first call that `scopes` do not allow, as the refusal names it; `undefined` if they allow
 * every call. A scope's recipients restrict the call's first argument (where TIP-20 `transfer`,
 * `transferWithMemo` and `approve` take theirs).
 */
export function forbiddenCall(
  calls: readonly KeyCall[],
  scopes: readonly CallScope[] | undefined,
): PaymentRefusedError.AccessKeyLimit | undefined {
  if (!scopes) return undefined
  for (const call of calls) {
    const selector = slice(call.data, 0, 4)
    const recipient = size(call.data) >= 36 ? (slice(call.data, 16, 36) as Address) : undefined
    const allowed = scopes.some(
      (scope) =>
        isAddressEqual(scope.target, call.to) &&
        (!scope.selector || scope.selector.toLowerCase() === selector.toLowerCase()) &&
        (!scope.recipients?.length ||
          (!!recipient && scope.recipients.some((allowed) => isAddressEqual(allowed, recipient)))),
    )
    if (!allowed)
      return {
        call: {
          target: getAddress(call.to),
          selector,
          function: functionNameOf(call.data),
          ...(recipient && isTransfer(selector) ? { recipient: getAddress(recipient) } : {}),
        },
        scopes: scopes.map(({ target, selector, recipients }) => ({
          target: getAddress(target),
          ...(selector ? { selector } : {}),
          ...(recipients?.length ? { recipients: recipients.map((to) => getAddress(to)) } : {}),
        })),
      }
  }
  return undefined
}

/** The calls a payment makes: TIP-20 transfers and the channel reserve's functions. */
const paymentAbi = [...Abis.tip20, ...Abis.tip20ChannelReserve]

function functionNameOf(data: Hex) {
  try {
    return decodeFunctionData({ abi: paymentAbi, data }).functionName
  } catch {
    return undefined
  }
}

/** TIP-20 functions whose recipient (first argument) a scope may restrict. */
const transferSelectors: readonly string[] = [
  Selectors.tip20.transfer,
  Selectors.tip20.transferWithMemo,
  Selectors.tip20.approve,
]

const isTransfer = (selector: Hex) => transferSelectors.includes(selector.toLowerCase())
