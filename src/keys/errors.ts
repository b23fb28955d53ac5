import { BaseError } from '../errors.js'

export type AccessKeyErrorType = AccessKeyError & { name: 'AccessKeyError' }

/**
 * An in-page access key cannot be created or restored: the wallet cannot sign a key
 * authorization, a parameter is out of range, the runtime lacks WebCrypto or IndexedDB, or what
 * was stored is not a key this page can use. Nothing was stored or deleted, and the wallet was not
 * asked, except when it signed with another account than the root's. A wallet's own refusal is
 * not wrapped: it reaches the caller as the wallet threw it (for example viem's
 * `UserRejectedRequestError`, or a WebAuthn `NotAllowedError`).
 *
 * @example
 * ```ts
 * import { AccessKeyError } from 'viem-mpp'
 *
 * if (error instanceof AccessKeyError && error.reason === 'rootCannotSign') showWalletHelp()
 * ```
 */
export class AccessKeyError extends BaseError {
  /** What is wrong. */
  readonly reason: AccessKeyError.Reason

  constructor({
    reason,
    details,
  }: {
    reason: AccessKeyError.Reason
    /** What exactly, e.g. the account kind or the value refused. Never key material. */
    details?: string | undefined
  }) {
    super(shortMessages[reason], {
      details,
      metaMessages: hints[reason] ? [hints[reason]] : undefined,
      name: 'AccessKeyError',
    })
    this.reason = reason
  }
}

export declare namespace AccessKeyError {
  type Reason = 'rootCannotSign' | 'invalidParameter' | 'unsupportedRuntime' | 'corrupt'
}

const shortMessages: Record<AccessKeyError.Reason, string> = {
  rootCannotSign: 'This wallet account cannot sign a key authorization.',
  invalidParameter: 'The access key parameters are out of range.',
  unsupportedRuntime: 'This runtime lacks what an in-page access key needs.',
  corrupt: 'The stored access key is not one this page can use; it was left as it is.',
}

const hints: Partial<Record<AccessKeyError.Reason, string>> = {
  rootCannotSign:
    "viem/tempo signs a key authorization with the root account's own `sign({ hash })`: use a local account (a viem/tempo root account such as a passkey from `Account.fromWebAuthnP256`, or `privateKeyToAccount`). A JSON-RPC (EIP-1193) wallet account has no such method, and an access key cannot authorize another key.",
  unsupportedRuntime:
    'It needs WebCrypto (`crypto.subtle`) and, for the default storage, IndexedDB: a browser page served over HTTPS or from localhost, or pass `storage`.',
  corrupt: 'Call `forgetAccessKey()` to drop it, then create a new key.',
}
