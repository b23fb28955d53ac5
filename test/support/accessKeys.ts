import { createPublicClient, createWalletClient, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Account } from 'viem/tempo'
import type { Localnet } from '../../src/testing/index.js'
import { balanceOf, tip20 } from './localnet.js'

/** A fresh root wallet holding exactly `funding` pathUSD, sent from dev account #1. */
export async function fundedRoot(net: Localnet, funding: bigint) {
  const root = Account.fromSecp256k1(generatePrivateKey())
  const dev = createWalletClient({
    account: privateKeyToAccount(net.accounts[1]!.privateKey),
    chain: net.chain,
    transport: http(net.rpcUrl),
  })
  const hash = await dev.writeContract({
    address: net.currency,
    abi: tip20,
    functionName: 'transfer',
    args: [root.address, funding],
  })
  const plain = createPublicClient({ chain: net.chain, transport: http(net.rpcUrl) })
  const receipt = await plain.waitForTransactionReceipt({ hash, pollingInterval: 50 })
  if (receipt.status !== 'success' || (await balanceOf(net, root.address)) !== funding)
    throw new Error('funding the root wallet failed')
  return root
}

/** A fresh secp256k1 access key of `root`, and the root's authorization of it on this chain. */
export async function authorizedKey(
  net: Localnet,
  root: Account.RootAccount,
  { expiry, limit }: { expiry: number; limit: bigint },
) {
  const privateKey = generatePrivateKey()
  const address = privateKeyToAccount(privateKey).address
  const keyAuthorization = await root.signKeyAuthorization(
    { address, type: 'secp256k1' },
    { chainId: BigInt(net.chain.id), expiry, limits: [{ token: net.currency, limit }] },
  )
  // The access-key account that signs with it for `root`, attaching the authorization.
  const account = Account.fromSecp256k1(privateKey, { access: root, keyAuthorization })
  return { privateKey, address, keyAuthorization, account }
}
