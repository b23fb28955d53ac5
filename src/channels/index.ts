export {
  type CloseChannelParameters,
  type CloseChannelReturnType,
  closeChannel,
} from './closeChannel.js'
export { ChannelError, type ChannelErrorType } from './errors.js'
export { type ListChannelsParameters, listChannels } from './listChannels.js'
export {
  type SyncChannelsParameters,
  type SyncChannelsReturnType,
  syncChannels,
} from './syncChannels.js'
export type { ChannelClient, ChannelProgress, ChannelState, ChannelSummary } from './types.js'
export {
  type WithdrawChannelParameters,
  type WithdrawChannelReturnType,
  withdrawChannel,
} from './withdrawChannel.js'
