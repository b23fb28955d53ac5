import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Credential } from 'mppx'
import type { KeyAuthorization } from 'ox/tempo'
import {
  type Address,
  createClient,
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
} from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Account, Actions, Selectors } from 'viem/tempo'
import { expect } from 'vitest'
import {
  mppHttp,
  type PaymentEvent,
  type PaymentProvider,
  PaymentRefusedError,
  type Problem,
} from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import { balanceOf, tip20, walletClient } from './localnet.js'
import { rejectionOf } from './rejection.js'

/** A fresh root wallet holding exactly `funding` pathUSD, sent from dev account #1. */
export async function fundedRoot(net: Localnet, funding: bigint) {
  const root = Account.fromSecp256k1(generatePrivateKey())
  const dev = walletClient(net, 1)
  const hash = await dev.writeContract({
    address: net.currency,
    abi: tip20,
    functionName: 'transfer',
    args: [root.address, funding],
  })
  const receipt = await dev.waitForTransactionReceipt({ hash, pollingInterval: 50 })
  if (receipt.status !== 'success' || (await balanceOf(net, root.address)) !== funding)
    throw new Error('funding the root wallet failed')
  return root
}

/**
 * A fresh secp256k1 access key of `root`, and the root's authorization of it on this chain with a
 * `limit` of pathUSD and, if given, call `scopes`. It expires in an hour unless `expiry` is given.
 */
export async function authorizedKey(
  net: Localnet,
  root: Account.RootAccount,
  {
    expiry = inAnHour(),
    limit,
    scopes,
  }: { expiry?: number | undefined; limit: bigint; scopes?: Scope[] | undefined },
) {
  const privateKey = generatePrivateKey()
  const address = privateKeyToAccount(privateKey).address
  const keyAuthorization = await root.signKeyAuthorization(
    { address, type: 'secp256k1' },
    {
      chainId: BigInt(net.chain.id),
      expiry,
      limits: [{ token: net.currency, limit }],
      ...(scopes ? { scopes } : {}),
    },
  )
  // The access-key account that signs with it for `root`, attaching the authorization.
  const account = Account.fromSecp256k1(privateKey, { access: root, keyAuthorization })
  return { privateKey, address, keyAuthorization, account }
}

/**
 * A new account of the same key and authorization, as another process (or a page reload) builds
 * it: nothing it learnt about the key's registration carries over.
 */
export function sameKeyAnew(
  root: Account.RootAccount,
  key: Pick<Awaited<ReturnType<typeof authorizedKey>>, 'privateKey' | 'keyAuthorization'>,
) {
  return Account.fromSecp256k1(key.privateKey, {
    access: root,
    keyAuthorization: key.keyAuthorization,
  })
}

/** What a node lacking the key makes an MPP server say (mpp-rs and Foundry classify it so). */
export const keyDoesNotExist = {
  type: 'https://paymentauth.org/problems/verification-failed',
  title: 'Verification Failed',
  detail: 'Payment verification failed: access key does not exist',
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
  const { receipt } = await Actions.accessKey.authorizeSync(rootWallet(net, root), {
    accessKey: { address, type: 'secp256k1' },
    expiry: inAnHour(),
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
  const { receipt } = await Actions.accessKey.updateLimitSync(rootWallet(net, root), {
    accessKey,
    token: net.currency,
    limit,
    gas: keychainGas,
  } as never)
  if (receipt.status !== 'success') throw new Error('updating the limit failed')
}

/** A wallet client of `root` on the localnet, for the root wallet's own keychain transactions. */
export function rootWallet(net: Localnet, root: Account.RootAccount) {
  return createWalletClient({ account: root, chain: net.chain, transport: http(net.rpcUrl) })
}

/** The keychain's entry for `accessKey` of `root`; its address is zero while the chain lacks it. */
export function keyMetadata(net: Localnet, root: Address, accessKey: Address) {
  return Actions.accessKey.getMetadata(chainReader(net), { account: root, accessKey })
}

/** What is left of `accessKey`'s pathUSD limit under `root`, as the keychain has it. */
export async function remainingLimit(net: Localnet, root: Address, accessKey: Address) {
  const { remaining } = await Actions.accessKey.getRemainingLimit(chainReader(net), {
    account: root,
    accessKey,
    token: net.currency,
  })
  return remaining
}

/** The transactions `from` sent that were mined in block `since` or later, oldest first. */
export async function minedTransactionsOf(net: Localnet, from: Address, since: bigint) {
  const reader = chainReader(net)
  const latest = await reader.getBlockNumber()
  const mined = []
  for (let n = since; n <= latest; n++) {
    const block = await reader.getBlock({ blockNumber: n, includeTransactions: true })
    for (const transaction of block.transactions)
      if (transaction.from === from.toLowerCase()) mined.push(transaction)
  }
  return mined
}

/**
 * The chain client given to the providers: viem's http() on the localnet, logging each
 * `eth_fillTransaction`: whether it carried a key authorization, and whether the node refused it
 * (`KeyAlreadyExists`, after which viem fills again without it). Its first `staleKeyReads` keychain
 * `getKey` reads answer "no such key", as a node that has not seen the key yet would.
 */
export function fillLoggingChainClient(
  net: Localnet,
  { staleKeyReads = 0 }: { staleKeyReads?: number } = {},
) {
  const fills: { keyAuthorization: boolean; refused: boolean }[] = []
  let stale = staleKeyReads
  const fetchFn: typeof fetch = async (input, init) => {
    const message = JSON.parse(String(init?.body)) as {
      id: number
      method: string
      params?: [{ keyAuthorization?: unknown; data?: Hex }]
    }
    if (
      stale > 0 &&
      message.method === 'eth_call' &&
      message.params?.[0]?.data?.startsWith(Selectors.accountKeychain.getKey)
    ) {
      stale--
      // getKey's (uint8, address, uint64, bool, bool) of a key that does not exist.
      const result = `0x${'00'.repeat(160)}`
      return Response.json({ jsonrpc: '2.0', id: message.id, result })
    }
    const response = await fetch(input, init)
    if (message.method === 'eth_fillTransaction') {
      const body = (await response.clone().json()) as { error?: { message?: string } }
      fills.push({
        keyAuthorization: !!message.params?.[0]?.keyAuthorization,
        refused: !!body.error?.message?.includes('KeyAlreadyExists'),
      })
    }
    return response
  }
  return {
    client: createClient({ chain: net.chain, transport: http(net.rpcUrl, { fetchFn }) }),
    fills,
  }
}

/**
 * A public client on `url` through mppHttp with `provider`, uncached so that every call is paid,
 * recording the credentials sent, the payments the server rejected and the receipts' references.
 */
export function recordingPaidClient(net: Localnet, url: string, provider: PaymentProvider) {
  const sent: PaymentEvent[] = []
  const rejected: { status: number; problem: Problem | undefined }[] = []
  const receipts: Hex[] = []
  const client = createPublicClient({
    chain: net.chain,
    cacheTime: 0,
    transport: mppHttp(url, {
      provider,
      onPaymentSent: (event) => sent.push(event),
      onPaymentRejected: ({ status, problem }) => rejected.push({ status, problem }),
      onReceipt: ({ receipt }) => receipts.push(receipt?.reference as Hex),
    }),
  })
  return { client, sent, rejected, receipts }
}

/** Expects `promise` to reject with a PaymentRefusedError for `reason`, and returns that error. */
export async function expectRefused(
  promise: Promise<unknown>,
  reason: PaymentRefusedError['reason'],
) {
  const error = await rejectionOf(promise)
  expect(error).toBeInstanceOf(PaymentRefusedError)
  const refused = error as PaymentRefusedError
  expect(refused.reason).toBe(reason)
  return refused
}

/** A client on the localnet itself (never a paid endpoint), uncached, for reading the truth. */
export const chainReader = (net: Localnet) =>
  createPublicClient({ chain: net.chain, transport: http(net.rpcUrl), cacheTime: 0 })

/** The expiry, in unix seconds, of keys whose expiry is not what a test is about. */
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600

const keychainGas = 20_000_000n

type Scope = KeyAuthorization.Scope
