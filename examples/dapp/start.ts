import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createWalletClient, type Hex, http, parseAbi } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { waitForTransactionReceipt } from 'viem/actions'
import { type Localnet, startPaidRpc } from 'viem-mpp/testing'
import { buildDapp, serveDapp } from './server.js'

export type StartDappOptions = {
  /** The localnet the page pays on. */
  net: Localnet
  /** The page's loopback port. @default 0 (a free port) */
  port?: number | undefined
  /** What the dev wallet is funded with, in base units. @default 10 USD */
  funding?: bigint | undefined
  /** The price of one call, in base units. @default 0.001 USD */
  price?: bigint | undefined
  /** What the page's access key may spend, fees included. @default 1 USD */
  keyLimit?: bigint | undefined
  /** The most one channel locks. @default 0.10 USD */
  maxDeposit?: bigint | undefined
  /** The most the page spends per visit, most fees included. @default 0.50 USD */
  budget?: bigint | undefined
  /** How the page reaches the paid RPC: `ws` pays over a WebSocket (in-band). @default 'http' */
  transport?: 'http' | 'ws' | undefined
}

/**
 * Builds the dApp, funds a throwaway dev wallet on the localnet, starts a paid RPC offering
 * sessions (with CORS for the page's origin) and serves the page, its config and a chain RPC proxy.
 */
export async function startDapp({
  net,
  port,
  funding = 10_000_000n,
  price = 1_000n,
  keyLimit = 1_000_000n,
  maxDeposit = 100_000n,
  budget = 500_000n,
  transport = 'http',
}: StartDappOptions) {
  const dist = await mkdtemp(join(tmpdir(), 'viem-mpp-dapp-'))
  const stops: (() => Promise<unknown>)[] = [() => rm(dist, { recursive: true, force: true })]
  const stop = async () => {
    for (const next of stops.reverse()) await next()
  }
  try {
    await buildDapp(dist)
    const devWalletKey = generatePrivateKey()
    const wallet = privateKeyToAccount(devWalletKey).address
    await fund(net, wallet, funding)

    let paidRpcUrl = ''
    let payee: Hex = '0x'
    const page = await serveDapp({
      dist,
      port,
      chainRpcUrl: net.rpcUrl,
      config: () => ({
        paidRpcUrl,
        chainRpcPath: '/chain',
        chainId: net.chain.id,
        currency: net.currency,
        payee,
        devWalletKey,
        keyLimit: String(keyLimit),
        maxDeposit: String(maxDeposit),
        budget: String(budget),
      }),
    })
    stops.push(() => page.stop())
    const rpc = await startPaidRpc({
      upstream: net.rpcUrl,
      chain: net.chain,
      intent: 'session',
      price,
      cors: page.url,
      transport,
    })
    stops.push(() => rpc.stop())
    paidRpcUrl = rpc.url
    payee = rpc.payee
    return { page, rpc, wallet, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/** Sends `amount` pathUSD to `to` from dev account #1 and waits for it. */
async function fund(net: Localnet, to: Hex, amount: bigint) {
  const dev = createWalletClient({
    account: privateKeyToAccount(net.accounts[1]!.privateKey),
    chain: net.chain,
    transport: http(net.rpcUrl),
  })
  const hash = await dev.writeContract({
    address: net.currency,
    abi: parseAbi(['function transfer(address to, uint256 amount) returns (bool)']),
    functionName: 'transfer',
    args: [to, amount],
  })
  const receipt = await waitForTransactionReceipt(dev, { hash, pollingInterval: 100 })
  if (receipt.status !== 'success') throw new Error('Funding the dev wallet failed.')
}
