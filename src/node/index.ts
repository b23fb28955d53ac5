export { discoverProvider } from './defaultProvider.js'
export { type FileChannelStore, fileChannelStore } from './fileChannelStore.js'
export {
  type DiscoverAccountParameters,
  type DiscoveredKey,
  discoverAccount,
  discoverKey,
  KeyDiscoveryError,
  type KeyDiscoveryErrorType,
  type KeyEntry,
  keyMismatch,
  keysTomlPath,
  parseKeysToml,
  selectKey,
} from './keys.js'
export {
  type RedisChannelStore,
  type RedisChannelStoreConfig,
  type RedisClient,
  redisChannelStore,
} from './redisChannelStore.js'
