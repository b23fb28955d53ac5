import { createPublicClient, type Hex, http, parseAbi } from 'viem'
import { afterAll, afterEach, beforeAll } from 'vitest'
import {
  type Localnet,
  type PaidRpc,
  type StartPaidRpcOptions,
  startLocalnet,
  startPaidRpc,
} from '../../src/testing/index.js'

export const tip20 = parseAbi([
  'function balanceOf(address) view returns (uint256)',
  'function transfer(address to, uint256 amount) returns (bool)',
  'event Transfer(address indexed from, address indexed to, uint256 amount)',
])

/**
 * One localnet for the test file (started before its tests, stopped after them), and paid RPCs
 * in front of it that are stopped after each test.
 */
export function useLocalnet() {
  let net: Localnet | undefined
  let rpc: PaidRpc | undefined
  beforeAll(async () => {
    net = await startLocalnet()
  })
  afterAll(() => net?.stop())
  afterEach(async () => {
    await rpc?.stop()
    rpc = undefined
  })

  const context = {
    get net() {
      if (!net) throw new Error('the localnet has not started')
      return net
    },
    /** Starts the paid RPC under test in front of the localnet; stopped after the test. */
    async startPaidRpc(options: Partial<StartPaidRpcOptions> = {}) {
      rpc = await startPaidRpc({
        upstream: context.net.rpcUrl,
        chain: context.net.chain,
        ...options,
      })
      return rpc
    },
    /** pathUSD balance, read straight from the localnet (never through a paid endpoint). */
    balanceOf(address: Hex) {
      const { chain, rpcUrl, currency } = context.net
      return createPublicClient({ chain, transport: http(rpcUrl), cacheTime: 0 }).readContract({
        address: currency,
        abi: tip20,
        functionName: 'balanceOf',
        args: [address],
      })
    },
  }
  return context
}
