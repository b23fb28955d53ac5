export {
  AnvilStartError,
  type AnvilStartErrorType,
} from './localnet/anvil.js'
export { defineLocalnetChain, type LocalnetChain } from './localnet/chain.js'
export {
  type Localnet,
  LocalnetStartError,
  type LocalnetStartErrorType,
  type StartLocalnetOptions,
  startLocalnet,
} from './localnet/startLocalnet.js'
export type { PaidRpcCounters } from './paidRpc/counters.js'
export {
  type PaidRpc,
  type PaidRpcIntent,
  type StartPaidRpcOptions,
  startPaidRpc,
} from './paidRpc/startPaidRpc.js'
export { PaidRpcStartError, type PaidRpcStartErrorType } from './paidRpc/upstream.js'
export {
  type Redis,
  RedisStartError,
  type RedisStartErrorType,
  type StartRedisOptions,
  startRedis,
} from './redis/startRedis.js'
