import { P256 } from 'ox'
import { createClient, createPublicClient, getAddress, http, type LocalAccount } from 'viem'
import { Account, Actions } from 'viem/tempo'
import { beforeAll, expect, test } from 'vitest'
import {
  createAccessKey,
  loadAccessKey,
  memoryAccessKeyStorage,
  memoryChannelStore,
  mppHttp,
  session,
} from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import { fundedRoot } from '../support/accessKeys.js'
import { noPayments } from '../support/counters.js'
import { tip20, useLocalnet, walletClient } from '../support/localnet.js'
import { sessionHelpers } from '../support/sessions.js'

// What the browser test does through a page, here in Node (WebCrypto, the memory key storage).
const localnet = useLocalnet()
const { channelEvents, blockNumber, plain } = sessionHelpers(localnet)
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

/** A root wallet of `kind` holding exactly 1 pathUSD. */
async function fundedRootOf(kind: 'secp256k1' | 'passkey'): Promise<LocalAccount> {
  if (kind === 'secp256k1') return fundedRoot(net, 1_000_000n)
  // A passkey (WebAuthn P256) wallet, signing without a browser.
  const root = Account.fromHeadlessWebAuthn(P256.randomPrivateKey(), {
    rpId: 'localhost',
    origin: 'http://localhost',
  })
  const dev = walletClient(net, 1)
  const hash = await dev.writeContract({
    address: net.currency,
    abi: tip20,
    functionName: 'transfer',
    args: [root.address, 1_000_000n],
  })
  await dev.waitForTransactionReceipt({ hash, pollingInterval: 50 })
  return root
}

test.each(['secp256k1', 'passkey'] as const)(
  'an in-page access key of a %s root pays a session: the root signs once (the authorization, carried by the open), the key signs every voucher',
  async (kind) => {
    const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 50_000n })
    const funded = await fundedRootOf(kind)
    expect(await localnet.balanceOf(funded.address)).toBe(1_000_000n)
    const rootSigned: string[] = []
    const root: LocalAccount = {
      ...funded,
      async sign(parameters) {
        rootSigned.push(parameters.hash)
        return funded.sign!(parameters)
      },
    }
    const storage = memoryAccessKeyStorage()
    const limit = 200_000n
    await createAccessKey({ root, chainId: net.chain.id, currency: net.currency, limit, storage })
    // As after a reload: the key comes back from its storage.
    const key = (await loadAccessKey({ root: root.address, chainId: net.chain.id, storage }))!
    const accessKey = getAddress(key.account.accessKeyAddress)
    const from = await blockNumber()
    const store = memoryChannelStore()
    const provider = session({
      account: key.account,
      client: createClient({ chain: net.chain, transport: http(net.rpcUrl) }),
      store,
    })
    const client = createPublicClient({
      chain: net.chain,
      cacheTime: 0,
      transport: mppHttp(rpc.url, { provider }),
    })

    for (let i = 0; i < 3; i++) expect(await client.getChainId()).toBe(net.chain.id)

    expect(rootSigned).toHaveLength(1)
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 2 })
    const [opened, ...more] = await channelEvents('ChannelOpened', root.address, from)
    expect(more).toEqual([])
    expect(opened!.args.authorizedSigner).toBe(accessKey)
    expect(opened!.args.deposit).toBe(50_000n)
    // The open provisioned the key with the authorization's expiry and limit.
    const metadata = await Actions.accessKey.getMetadata(plain(), {
      account: root.address,
      accessKey,
    })
    expect([metadata.address, metadata.expiry, metadata.spendPolicy]).toEqual([
      accessKey,
      BigInt(key.expiry),
      'limited',
    ])
    // The root paid the deposit and the open's fee, and nothing for the vouchers.
    const openFee = 1_000_000n - 50_000n - (await localnet.balanceOf(root.address))
    expect(openFee).toBeGreaterThan(0n)
    // On this localnet only the fee counts against the key's limit: the deposit moves by the
    // shim's approve-less transferFrom, which the keychain does not meter (the provider's own check
    // counts deposit + fee, the stricter reading).
    const { remaining } = await Actions.accessKey.getRemainingLimit(plain(), {
      account: root.address,
      accessKey,
      token: net.currency,
    })
    expect(remaining).toBe(limit - openFee)

    const [closed] = await provider.close()
    expect([closed!.settled, closed!.refunded]).toEqual([3_000n, 47_000n])
    expect(rootSigned).toHaveLength(1)
  },
)
