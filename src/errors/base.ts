import { BaseError as ViemBaseError } from 'viem'
import { version } from '../version.js'

/**
 * viem's `BaseError` (`shortMessage`, `details`, `metaMessages`, `walk`), whose message and
 * `version` name this package's version rather than viem's: viem's own setting for that is global
 * (`setErrorConfig`), and changing it would relabel viem's errors too. Every error of this package
 * extends it.
 *
 * @example
 * ```ts
 * class ExampleError extends BaseError {
 *   constructor() {
 *     super('Something went wrong.', { name: 'ExampleError' })
 *   }
 * }
 * new ExampleError().version // 'viem-mpp@0.1.0'
 * ```
 */
export class BaseError extends ViemBaseError {
  override version = `viem-mpp@${version}`

  constructor(shortMessage: string, parameters?: ConstructorParameters<typeof ViemBaseError>[1]) {
    super(shortMessage, parameters)
    // viem ends the message with `Version: viem@…` unless its error config has no version.
    this.message = this.message.replace(/\nVersion: [^\n]*$/, `\nVersion: ${this.version}`)
  }
}

/**
 * Error codes that viem's `fallback()` treats as final (its default `shouldThrow`), so that it
 * never moves on to another transport after a payment decision. Inside `fallback()`, viem wraps
 * the error in its `UserRejectedRequestError` / `TransactionRejectedRpcError`; find ours with
 * `error.walk((e) => e instanceof PaymentRefusedError)`.
 */
export const userRejectedCode = 4001
export const transactionRejectedCode = -32003
