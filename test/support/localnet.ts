import {
  createClient,
  createPublicClient,
  type Hex,
  http,
  parseAbi,
  publicActions,
  walletActions,
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
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

/** A wallet and public client on the localnet itself for dev account `index`. */
export function walletClient(net: Localnet, index: number) {
  const { privateKey } = net.accounts[index] ?? {}
  if (!privateKey) throw new Error(`no dev account ${index}`)
  return createClient({
    account: privateKeyToAccount(privateKey),
    chain: net.chain,
    transport: http(net.rpcUrl),
  })
    .extend(publicActions)
    .extend(walletActions)
}

/** pathUSD balance, read straight from the localnet (never through a paid endpoint). */
export function balanceOf(net: Localnet, address: Hex) {
  return createPublicClient({
    chain: net.chain,
    transport: http(net.rpcUrl),
    cacheTime: 0,
  }).readContract({ address: net.currency, abi: tip20, functionName: 'balanceOf', args: [address] })
}

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
    balanceOf: (address: Hex) => balanceOf(context.net, address),
  }
  return context
}
