export { discoverProvider } from './defaultProvider.js'
export { type FileChannelStore, fileChannelStore } from './fileChannelStore.js'
export {
  type DiscoverAccountParameters,
  discoverAccount,
  KeyDiscoveryError,
  type KeyDiscoveryErrorType,
  type KeyEntry,
  keysTomlPath,
  parseKeysToml,
  selectKey,
} from './keys.js'
