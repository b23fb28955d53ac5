/**
 * mppHttp with no provider, in Node: the key is found on the first 402 — TEMPO_PRIVATE_KEY, then
 * $TEMPO_HOME/wallet/keys.toml — and pays a real charge on the localnet.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KeyAuthorization } from 'ox/tempo'
import { createClient, createPublicClient, http, publicActions, walletActions } from 'viem'
import { generatePrivateKey, privateKeyToAccount, privateKeyToAddress } from 'viem/accounts'
import { Account, Actions } from 'viem/tempo'
import { afterEach, expect, expectTypeOf, test, vi } from 'vitest'
import type { NodeEntry } from '../../src/flow/defaultProvider.js'
import { mppHttp, PaymentRequiredError } from '../../src/index.js'
import { discoverProvider } from '../../src/node/index.js'
import { tip20, useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'
import { tempDir } from '../support/tempDir.js'

const localnet = useLocalnet()
afterEach(() => {
  vi.unstubAllEnvs()
})

const paidClient = (url: string) =>
  createPublicClient({ chain: localnet.net.chain, transport: mppHttp(url), cacheTime: 0 })

test('TEMPO_PRIVATE_KEY pays', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ price: 1_000n })
  vi.stubEnv('TEMPO_PRIVATE_KEY', ` ${net.accounts[2]!.privateKey} `)
  const before = await localnet.balanceOf(rpc.payee)
  expect(await paidClient(rpc.url).getChainId()).toBe(1337)
  expect(rpc.counters.payments.charge).toBe(1)
  expect((await localnet.balanceOf(rpc.payee)) - before).toBe(1_000n)
})

test('an access key in keys.toml pays for its wallet, provisioning itself', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ price: 1_000n })
  // A fresh wallet, funded by a dev account, and an access key it authorizes.
  const rootKey = generatePrivateKey()
  const root = Account.fromSecp256k1(rootKey)
  const funder = createClient({
    account: privateKeyToAccount(net.accounts[3]!.privateKey),
    chain: net.chain,
    transport: http(net.rpcUrl),
  })
    .extend(publicActions)
    .extend(walletActions)
  const funding = await funder.writeContract({
    address: net.currency,
    abi: tip20,
    functionName: 'transfer',
    args: [root.address, 10_000_000n],
  })
  await funder.waitForTransactionReceipt({ hash: funding })
  const accessKey = generatePrivateKey()
  const accessKeyAddress = privateKeyToAddress(accessKey)
  const authorization = await root.signKeyAuthorization(
    { accessKeyAddress, keyType: 'secp256k1' },
    {
      chainId: BigInt(net.chain.id),
      expiry: Math.floor(Date.now() / 1000) + 3_600,
      limits: [{ token: net.currency, limit: 5_000_000n }],
    },
  )
  const home = tempDir('viem-mpp-home-')
  mkdirSync(join(home, 'wallet'))
  writeFileSync(
    join(home, 'wallet', 'keys.toml'),
    [
      '[[keys]]',
      'wallet_type = "local"',
      `wallet_address = "${root.address}"`,
      `chain_id = ${net.chain.id}`,
      'key_type = "secp256k1"',
      `key_address = "${accessKeyAddress}"`,
      `key = "${accessKey}"`,
      `key_authorization = "${KeyAuthorization.serialize(authorization as never)}"`,
      `limits = [{ currency = "${net.currency}", limit = "5000000" }]`,
    ].join('\n'),
  )
  vi.stubEnv('TEMPO_HOME', home)

  const payeeBefore = await localnet.balanceOf(rpc.payee)
  const rootBefore = await localnet.balanceOf(root.address)
  const client = paidClient(rpc.url)
  expect(await client.getChainId()).toBe(1337)
  expect(await client.getChainId()).toBe(1337)
  expect(rpc.counters.payments.charge).toBe(2)
  expect((await localnet.balanceOf(rpc.payee)) - payeeBefore).toBe(2_000n)
  // The wallet paid (the price, and the fees, in pathUSD).
  expect(rootBefore - (await localnet.balanceOf(root.address))).toBeGreaterThanOrEqual(2_000n)
  // The first payment registered the access key on chain.
  const metadata = await Actions.accessKey.getMetadata(
    createClient({ chain: net.chain, transport: http(net.rpcUrl) }),
    { account: root.address, accessKey: accessKeyAddress },
  )
  expect(metadata.address.toLowerCase()).toBe(accessKeyAddress.toLowerCase())
  expect(metadata.isRevoked).toBe(false)
})

test('no key anywhere: PaymentRequiredError telling how to set one up, nothing paid', async () => {
  const rpc = await localnet.startPaidRpc()
  const error = await rejectionOf(paidClient(rpc.url).getChainId())
  expect(error).toBeInstanceOf(PaymentRequiredError)
  expect((error as PaymentRequiredError).reason).toBe('noProvider')
  expect(error.message).toContain('TEMPO_PRIVATE_KEY')
  expect(error.message).toContain('keys.toml')
  expect(rpc.counters.payments.charge).toBe(0)
})

test('a malformed TEMPO_PRIVATE_KEY: PaymentRequiredError invalidKey saying so first, never quoting it', async () => {
  const rpc = await localnet.startPaidRpc()
  vi.stubEnv('TEMPO_PRIVATE_KEY', '0x1234')
  const error = await rejectionOf(paidClient(rpc.url).getChainId())
  expect(error).toBeInstanceOf(PaymentRequiredError)
  expect(error).toMatchObject({
    reason: 'invalidKey',
    shortMessage:
      'The endpoint requires payment, and the Tempo key set up for it is malformed: nothing was paid.',
    details: 'TEMPO_PRIVATE_KEY is not a 32-byte hex private key.',
  })
  expect(error.message).not.toContain('0x1234')
  expect(rpc.counters.payments.charge).toBe(0)
})

test("viem-mpp/node's discoverProvider is what the lazy import of the default provider expects", () => {
  expectTypeOf(discoverProvider).toExtend<NodeEntry['discoverProvider']>()
})
