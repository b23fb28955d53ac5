import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Credential } from 'mppx'
import type { KeyAuthorization } from 'ox/tempo'
import { type Address, createPublicClient, createWalletClient, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Account, Actions } from 'viem/tempo'
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

/**
 * A loopback proxy in front of the paid RPC `target` that answers the paid requests `rejects`
 * picks as a server whose node lacks the access key would: a 402 with a fresh challenge (the
 * target's own, for the same request sent unpaid) and `problem`. Such a credential never reaches
 * the target, so nothing it carries can be broadcast. Other requests pass through.
 */
export async function startKeyRejectingProxy(
  target: string,
  {
    rejects,
    problem,
  }: {
    /** Whether to reject the `index`-th paid request (from 0), given its credential's payload. */
    rejects: (index: number, payload: Record<string, unknown>) => boolean
    problem: Record<string, unknown>
  },
) {
  const counts = { paid: 0, rejected: 0 }
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks)
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers))
      if (typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name))
        headers.set(name, value)
    const authorization = req.headers.authorization
    const paid = authorization?.startsWith('Payment ')
    const rejected =
      paid &&
      rejects(
        counts.paid++,
        Credential.deserialize(authorization as string).payload as Record<string, unknown>,
      )
    if (rejected) {
      counts.rejected++
      headers.delete('authorization')
    }
    const answer = await fetch(new URL(req.url ?? '/', target), {
      method: req.method ?? 'POST',
      headers,
      ...(body.length ? { body } : {}),
    })
    const text = await answer.text()
    const passed: Record<string, string> = {}
    for (const name of ['content-type', 'www-authenticate', 'payment-receipt']) {
      const value = answer.headers.get(name)
      if (value) passed[name] = value
    }
    if (!rejected) return res.writeHead(answer.status, passed).end(text)
    if (answer.status !== 402) throw new Error(`expected a fresh challenge, got ${answer.status}`)
    res
      .writeHead(402, { ...passed, 'content-type': 'application/problem+json' })
      .end(JSON.stringify({ status: 402, ...problem }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/**
 * A fresh secp256k1 access key of `root`, authorized on chain by a transaction of the root wallet
 * with `scopes` and a `limit` of pathUSD; the access-key account carries no authorization. (The
 * localnet's fill underestimates the keychain's gas, so the gas is given.)
 */
export async function provisionedKey(
  net: Localnet,
  root: Account.RootAccount,
  { limit, scopes }: { limit: bigint; scopes?: Scope[] | undefined },
) {
  const privateKey = generatePrivateKey()
  const address = privateKeyToAccount(privateKey).address
  const wallet = createWalletClient({
    account: root,
    chain: net.chain,
    transport: http(net.rpcUrl),
  })
  const { receipt } = await Actions.accessKey.authorizeSync(wallet, {
    accessKey: { address, type: 'secp256k1' },
    expiry: Math.floor(Date.now() / 1000) + 3600,
    limits: [{ token: net.currency, limit }],
    ...(scopes ? { scopes } : {}),
    gas: keychainGas,
  } as never)
  if (receipt.status !== 'success') throw new Error('authorizing the access key failed')
  return { privateKey, address, account: Account.fromSecp256k1(privateKey, { access: root }) }
}

/** Sets what is left of the key's pathUSD limit, by a transaction of the root wallet. */
export async function setRemainingLimit(
  net: Localnet,
  root: Account.RootAccount,
  accessKey: Address,
  limit: bigint,
) {
  const wallet = createWalletClient({
    account: root,
    chain: net.chain,
    transport: http(net.rpcUrl),
  })
  const { receipt } = await Actions.accessKey.updateLimitSync(wallet, {
    accessKey,
    token: net.currency,
    limit,
    gas: keychainGas,
  } as never)
  if (receipt.status !== 'success') throw new Error('updating the limit failed')
}

const keychainGas = 20_000_000n

type Scope = KeyAuthorization.Scope
