export {
  ChannelError,
  type ChannelErrorType,
  type ChannelProgress,
  type ChannelState,
  type ChannelSummary,
  type CloseChannelParameters,
  type CloseChannelReturnType,
  closeChannel,
  type ListChannelsParameters,
  listChannels,
  type SyncChannelsParameters,
  type SyncChannelsReturnType,
  syncChannels,
  type WithdrawChannelParameters,
  type WithdrawChannelReturnType,
  withdrawChannel,
} from './channels/index.js'
export {
  InvalidPaymentTimeoutError,
  type InvalidPaymentTimeoutErrorType,
  InvalidPlainHttpOriginError,
  type InvalidPlainHttpOriginErrorType,
  InvalidQuoteError,
  type InvalidQuoteErrorType,
  type PaymentError,
  PaymentFailedError,
  type PaymentFailedErrorType,
  PaymentRefusedError,
  type PaymentRefusedErrorType,
  PaymentRequiredError,
  type PaymentRequiredErrorType,
  RecoveredChannelError,
  type RecoveredChannelErrorType,
} from './errors.js'
export type { PaymentHooks } from './flow/hooks.js'
export type { PaymentEvent } from './flow/policy.js'
export { maxPaymentRounds } from './flow/rounds.js'
export { defaultMaxAmount, defaultMaxDeposit } from './internal/defaults.js'
export {
  type BrowserAccessKey,
  type CreateAccessKeyParameters,
  createAccessKey,
  defaultAccessKeyLifetime,
  defaultAccessKeyLimit,
  forgetAccessKey,
  type LoadAccessKeyParameters,
  loadAccessKey,
} from './keys/browserAccessKey.js'
export { AccessKeyError, type AccessKeyErrorType } from './keys/errors.js'
export {
  type AccessKeyStorage,
  type IndexedDbAccessKeyStorageParameters,
  indexedDbAccessKeyStorage,
  memoryAccessKeyStorage,
  type StoredAccessKey,
} from './keys/storage.js'
export { type MppHttpTransport, type MppHttpTransportConfig, mppHttp } from './mppHttp.js'
export {
  type MppWebSocketTransport,
  type MppWebSocketTransportConfig,
  mppWebSocket,
} from './mppWebSocket.js'
export type { Problem, Rejection } from './Problem.js'
export { type ChargeParameters, charge } from './providers/charge.js'
export { multi } from './providers/multi.js'
export type {
  PaidRequest,
  PaymentProvider,
  PaymentQuote,
  PaymentTransfer,
  PreparedPayment,
  PrepareParameters,
  RecoverParameters,
} from './providers/PaymentProvider.js'
export {
  type ClosedChannel,
  type SessionParameters,
  type SessionProvider,
  session,
} from './providers/session.js'
export { type TempoParameters, type TempoProvider, tempo } from './providers/tempo.js'
export type { ChannelEntry, ChannelRecord, ChannelStore } from './stores/ChannelStore.js'
export { ChannelStoreError, type ChannelStoreErrorType } from './stores/errors.js'
export { type ChannelStorage, localStorageChannelStore } from './stores/localStorage.js'
export { memoryChannelStore } from './stores/memory.js'
