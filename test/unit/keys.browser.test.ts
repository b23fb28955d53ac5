import { P256 } from 'ox'
import { KeyAuthorization, SignatureEnvelope } from 'ox/tempo'
import { type LocalAccount, maxUint128, UserRejectedRequestError } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Account } from 'viem/tempo'
import { afterEach, describe, expect, test, vi } from 'vitest'
import {
  AccessKeyError,
  createAccessKey,
  defaultAccessKeyLifetime,
  defaultAccessKeyLimit,
  forgetAccessKey,
  indexedDbAccessKeyStorage,
  loadAccessKey,
  memoryAccessKeyStorage,
} from '../../src/index.js'
import { rejectionOf } from '../support/rejection.js'

const pathUsd = '0x20c0000000000000000000000000000000000000'
const chainId = 1337
const now = () => Math.floor(Date.now() / 1000)

/** A root wallet (a local account) that counts the hashes it is asked to sign. */
function countingRoot(base: LocalAccount = privateKeyToAccount(generatePrivateKey())) {
  const signed: string[] = []
  const root: LocalAccount = {
    ...base,
    async sign({ hash }) {
      signed.push(hash)
      return base.sign!({ hash })
    },
  }
  return { root, signed }
}

afterEach(() => {
  vi.useRealTimers()
})

describe('createAccessKey', () => {
  test('a non-extractable P256 key, authorized by one root signature, limited and expiring as asked', async () => {
    const storage = memoryAccessKeyStorage()
    const { root, signed } = countingRoot()
    const expiry = now() + 3_600

    const key = await createAccessKey({
      root,
      chainId,
      currency: pathUsd,
      limit: 250_000n,
      expiry,
      storage,
    })

    expect(signed).toHaveLength(1)
    expect(key.root).toBe(root.address)
    expect(key.chainId).toBe(chainId)
    expect(key.expiry).toBe(expiry)
    expect(key.limits).toEqual([{ token: pathUsd, limit: 250_000n }])
    expect(key.account.source).toBe('accessKey')
    expect(key.account.address).toBe(root.address)
    expect(key.account.keyType).toBe('p256')

    const stored = await storage.get(`accessKey:${chainId}:${root.address.toLowerCase()}`)
    expect(stored?.privateKey).toBeInstanceOf(CryptoKey)
    expect(stored?.privateKey.extractable).toBe(false)
    expect(stored?.privateKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' })
    await expect(crypto.subtle.exportKey('pkcs8', stored!.privateKey)).rejects.toThrow()

    // The stored authorization is the root's signature over exactly this key, chain, expiry and limit.
    const authorization = KeyAuthorization.deserialize(
      stored!.keyAuthorization,
    ) as KeyAuthorization.Signed
    expect(authorization).toMatchObject({
      address: key.account.accessKeyAddress.toLowerCase(),
      chainId: BigInt(chainId),
      expiry,
      type: 'p256',
      limits: [{ token: pathUsd, limit: 250_000n }],
    })
    expect(
      SignatureEnvelope.verify(authorization.signature, {
        address: root.address,
        payload: KeyAuthorization.getSignPayload(authorization),
      }),
    ).toBe(true)
    expect(signed[0]).toBe(KeyAuthorization.getSignPayload(authorization))
  })

  test('defaults: a limit of 1 USD and a lifetime of one day', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2030-01-01T00:00:00Z') })
    const key = await createAccessKey({
      root: privateKeyToAccount(generatePrivateKey()),
      chainId,
      currency: pathUsd,
      storage: memoryAccessKeyStorage(),
    })
    expect(defaultAccessKeyLimit).toBe(1_000_000n)
    expect(defaultAccessKeyLifetime).toBe(86_400)
    expect(key.limits).toEqual([{ token: pathUsd, limit: 1_000_000n }])
    expect(key.expiry).toBe(Date.UTC(2030, 0, 2) / 1000)
  })

  test('vouchers and transactions are signed by the access key: the root is never asked again', async () => {
    const storage = memoryAccessKeyStorage()
    const { root, signed } = countingRoot()
    const key = await createAccessKey({ root, chainId, currency: pathUsd, storage })

    const channelId = `0x${'11'.repeat(32)}` as const
    const signature = await key.account.signVoucher({
      chainId,
      channel: channelId,
      cumulativeAmount: 5_000n,
    })
    const envelope = SignatureEnvelope.from(signature)
    expect(envelope.type).toBe('p256')
    // A voucher is the access key's own (raw) signature, as a channel whose authorized signer is the key expects.
    expect(
      SignatureEnvelope.verify(envelope, {
        address: key.account.accessKeyAddress,
        payload: (await import('ox/tempo')).Channel.getVoucherSignPayload({
          chainId,
          channelId,
          cumulativeAmount: 5_000n,
        }),
      }),
    ).toBe(true)
    await key.account.signMessage({ message: 'hello' })
    expect(signed).toHaveLength(1)
  })

  test.each([
    ['viem privateKeyToAccount', () => privateKeyToAccount(generatePrivateKey())],
    ['viem/tempo Account.fromSecp256k1', () => Account.fromSecp256k1(generatePrivateKey())],
    ['viem/tempo Account.fromP256', () => Account.fromP256(P256.randomPrivateKey())],
    [
      'viem/tempo Account.fromHeadlessWebAuthn (a passkey)',
      () =>
        Account.fromHeadlessWebAuthn(P256.randomPrivateKey(), {
          rpId: 'localhost',
          origin: 'http://localhost',
        }),
    ],
  ])('a %s root authorizes a key with its own signature', async (_, rootOf) => {
    const root = rootOf()
    const storage = memoryAccessKeyStorage()
    const key = await createAccessKey({ root, chainId, currency: pathUsd, storage })
    const stored = await storage.get(`accessKey:${chainId}:${root.address.toLowerCase()}`)
    const authorization = KeyAuthorization.deserialize(
      stored!.keyAuthorization,
    ) as KeyAuthorization.Signed
    expect(
      SignatureEnvelope.verify(authorization.signature, {
        address: root.address,
        payload: KeyAuthorization.getSignPayload(authorization),
      }),
    ).toBe(true)
    expect(key.account.address).toBe(root.address)
  })

  test('the wallet refuses: its error is thrown as is, and nothing is stored', async () => {
    const storage = memoryAccessKeyStorage()
    const base = privateKeyToAccount(generatePrivateKey())
    const refusing: LocalAccount = {
      ...base,
      async sign() {
        throw new UserRejectedRequestError(new Error('User rejected the request.'))
      },
    }
    const error = await rejectionOf(
      createAccessKey({ root: refusing, chainId, currency: pathUsd, storage }),
    )
    expect(error).toBeInstanceOf(UserRejectedRequestError)
    expect((error as UserRejectedRequestError).code).toBe(4001)
    expect(await loadAccessKey({ root: base.address, chainId, storage })).toBeUndefined()
  })

  test('a JSON-RPC (EIP-1193) wallet account, or an access key, cannot authorize a key: AccessKeyError, nothing asked', async () => {
    const storage = memoryAccessKeyStorage()
    const address = privateKeyToAccount(generatePrivateKey()).address
    const jsonRpc = await rejectionOf(
      createAccessKey({ root: { address, type: 'json-rpc' }, chainId, currency: pathUsd, storage }),
    )
    expect(jsonRpc).toBeInstanceOf(AccessKeyError)
    expect((jsonRpc as AccessKeyError).reason).toBe('rootCannotSign')
    expect((jsonRpc as AccessKeyError).shortMessage).toBe(
      'This wallet account cannot sign a key authorization.',
    )
    expect(jsonRpc.message).toContain('Details: It is a json-rpc account.')
    expect(jsonRpc.message).toContain('A JSON-RPC (EIP-1193) wallet account has no such method')

    const root = Account.fromSecp256k1(generatePrivateKey())
    const accessKey = Account.fromSecp256k1(generatePrivateKey(), { access: root })
    const nested = await rejectionOf(
      createAccessKey({ root: accessKey, chainId, currency: pathUsd, storage }),
    )
    expect((nested as AccessKeyError).reason).toBe('rootCannotSign')
    expect(nested.message).toContain('Details: It is itself an access key.')
    expect(await loadAccessKey({ root: address, chainId, storage })).toBeUndefined()
    expect(await loadAccessKey({ root: root.address, chainId, storage })).toBeUndefined()
  })

  test('a wallet that signs with another account is refused: nothing is stored', async () => {
    const storage = memoryAccessKeyStorage()
    const claimed = privateKeyToAccount(generatePrivateKey())
    const other = privateKeyToAccount(generatePrivateKey())
    const lying: LocalAccount = { ...claimed, sign: (parameters) => other.sign(parameters) }
    const error = await rejectionOf(
      createAccessKey({ root: lying, chainId, currency: pathUsd, storage }),
    )
    expect((error as AccessKeyError).reason).toBe('rootCannotSign')
    expect(error.message).toContain("Details: The wallet's signature is not the root account's.")
    expect(await loadAccessKey({ root: claimed.address, chainId, storage })).toBeUndefined()
  })

  test.each([
    [{ limit: 0n }, 'limit must be above 0, not 0.'],
    [{ limit: -1n }, 'limit must be above 0, not -1.'],
    [{ expiry: 1_000 }, 'expiry must be a future unix time in seconds, not 1000.'],
    [
      { expiry: 1.5e12 + 0.5 },
      'expiry must be a future unix time in seconds, not 1500000000000.5.',
    ],
    [{ chainId: 0 }, 'chainId must be a positive integer, not 0.'],
    [{ currency: '0x1234' as const }, 'currency must be an address.'],
  ])(
    'out-of-range parameters %o are refused before the wallet is asked',
    async (override, details) => {
      const { root, signed } = countingRoot()
      const error = await rejectionOf(
        createAccessKey({
          root,
          chainId,
          currency: pathUsd,
          storage: memoryAccessKeyStorage(),
          ...override,
        }),
      )
      expect((error as AccessKeyError).reason).toBe('invalidParameter')
      expect(error.message).toContain(`Details: ${details}`)
      expect(signed).toEqual([])
    },
  )

  test("a new key replaces the root's earlier key on that chain, not another root's or chain's", async () => {
    const storage = memoryAccessKeyStorage()
    const root = privateKeyToAccount(generatePrivateKey())
    const other = privateKeyToAccount(generatePrivateKey())
    const first = await createAccessKey({ root, chainId, currency: pathUsd, storage })
    const otherChain = await createAccessKey({ root, chainId: 4217, currency: pathUsd, storage })
    const otherRoot = await createAccessKey({ root: other, chainId, currency: pathUsd, storage })
    const second = await createAccessKey({ root, chainId, currency: pathUsd, storage })

    expect(second.account.accessKeyAddress).not.toBe(first.account.accessKeyAddress)
    const load = (address: `0x${string}`, id: number) =>
      loadAccessKey({ root: address, chainId: id, storage }).then(
        (key) => key?.account.accessKeyAddress,
      )
    expect(await load(root.address, chainId)).toBe(second.account.accessKeyAddress)
    expect(await load(root.address, 4217)).toBe(otherChain.account.accessKeyAddress)
    expect(await load(other.address, chainId)).toBe(otherRoot.account.accessKeyAddress)
  })
})

describe('loadAccessKey', () => {
  test('after a reload, the same key signs for the same root, with its authorization, without asking the wallet', async () => {
    const storage = memoryAccessKeyStorage()
    const { root, signed } = countingRoot()
    const created = await createAccessKey({ root, chainId, currency: pathUsd, limit: 7n, storage })

    const loaded = await loadAccessKey({ root: root.address, chainId, storage })
    expect(loaded?.account.accessKeyAddress).toBe(created.account.accessKeyAddress)
    expect(loaded?.account.address).toBe(root.address)
    expect(loaded?.limits).toEqual([{ token: pathUsd, limit: 7n }])
    expect(loaded?.expiry).toBe(created.expiry)
    // The authorization rides with the key until the chain has it (its first payment provisions it).
    const pending = await loaded?.account.keyAuthorizationManager?.get({
      address: root.address,
      accessKey: created.account.accessKeyAddress,
      chainId,
    })
    expect(pending?.address.toLowerCase()).toBe(created.account.accessKeyAddress.toLowerCase())
    // Both sign alike: the private key is the same CryptoKey.
    const voucher = { chainId, channel: `0x${'22'.repeat(32)}` as const, cumulativeAmount: 1n }
    const signature = SignatureEnvelope.from(await loaded!.account.signVoucher(voucher))
    expect(signature.type === 'p256' && signature.publicKey).toEqual(
      (SignatureEnvelope.from(await created.account.signVoucher(voucher)) as { publicKey: unknown })
        .publicKey,
    )
    expect(signed).toHaveLength(1)
    expect(await loadAccessKey({ root: root.address, chainId: 1, storage })).toBeUndefined()
  })

  test('an expired key is not returned, and is deleted', async () => {
    const storage = memoryAccessKeyStorage()
    const root = privateKeyToAccount(generatePrivateKey())
    const expiry = now() + 60
    await createAccessKey({ root, chainId, currency: pathUsd, expiry, storage })
    const id = `accessKey:${chainId}:${root.address.toLowerCase()}`

    vi.useFakeTimers({ toFake: ['Date'], now: (expiry - 1) * 1000 })
    expect((await loadAccessKey({ root: root.address, chainId, storage }))?.expiry).toBe(expiry)
    vi.setSystemTime(expiry * 1000)
    expect(await loadAccessKey({ root: root.address, chainId, storage })).toBeUndefined()
    expect(await storage.get(id)).toBeUndefined()
  })

  test('forget() and forgetAccessKey delete the key', async () => {
    const storage = memoryAccessKeyStorage()
    const root = privateKeyToAccount(generatePrivateKey())
    const key = await createAccessKey({ root, chainId, currency: pathUsd, storage })
    await key.forget()
    expect(await loadAccessKey({ root: root.address, chainId, storage })).toBeUndefined()

    await createAccessKey({ root, chainId, currency: pathUsd, storage })
    await forgetAccessKey({ root: root.address, chainId, storage })
    expect(await loadAccessKey({ root: root.address, chainId, storage })).toBeUndefined()
  })

  test('a stored key that is not usable (another key, chain, no CryptoKey) throws corrupt and is left as it is', async () => {
    const storage = memoryAccessKeyStorage()
    const root = privateKeyToAccount(generatePrivateKey())
    const a = await createAccessKey({ root, chainId, currency: pathUsd, storage })
    const id = `accessKey:${chainId}:${root.address.toLowerCase()}`
    const good = (await storage.get(id))!
    const other = await createAccessKey({ root, chainId: 5, currency: pathUsd, storage })
    const otherStored = (await storage.get(`accessKey:5:${root.address.toLowerCase()}`))!

    const corrupt = [
      // Another key's authorization.
      { ...good, publicKey: otherStored.publicKey },
      // Another chain's authorization.
      { ...good, keyAuthorization: otherStored.keyAuthorization },
      // Not a CryptoKey (e.g. key bytes written by someone else).
      { ...good, privateKey: { type: 'private' } as unknown as CryptoKey },
      { ...good, keyAuthorization: '0x1234' as const },
      // Another root's key under this root's id.
      { ...good, root: privateKeyToAccount(generatePrivateKey()).address },
    ]
    for (const value of corrupt) {
      await storage.set(id, value)
      const error = await rejectionOf(loadAccessKey({ root: root.address, chainId, storage }))
      expect(error).toBeInstanceOf(AccessKeyError)
      expect((error as AccessKeyError).reason).toBe('corrupt')
      expect(error.message).toContain(`Details: Stored as "${id}": `)
      expect(error.message).not.toContain(good.keyAuthorization)
      expect(await storage.get(id)).toEqual(value)
    }
    await forgetAccessKey({ root: root.address, chainId, storage })
    expect(await storage.get(id)).toBeUndefined()
    expect(a.account.accessKeyAddress).not.toBe(other.account.accessKeyAddress)
  })
})

test('indexedDbAccessKeyStorage needs IndexedDB (absent in Node): AccessKeyError unsupportedRuntime', () => {
  expect(globalThis.indexedDB).toBeUndefined()
  let error: unknown
  try {
    indexedDbAccessKeyStorage()
  } catch (thrown) {
    error = thrown
  }
  expect(error).toBeInstanceOf(AccessKeyError)
  expect((error as AccessKeyError).reason).toBe('unsupportedRuntime')
  expect((error as AccessKeyError).message).toContain(
    'Details: globalThis.indexedDB is not available.',
  )
})

// Records swapped by another script of the page, and parameters a caller gets wrong.

const idOf = (root: string) => `accessKey:${chainId}:${root.toLowerCase()}`

describe('loadAccessKey refuses a swapped record as corrupt, leaving it as it is', () => {
  test("an authorization of this key signed by another account than the root (another script's wallet)", async () => {
    const storage = memoryAccessKeyStorage()
    const root = privateKeyToAccount(generatePrivateKey())
    const other = privateKeyToAccount(generatePrivateKey())
    await createAccessKey({ root, chainId, currency: pathUsd, storage })
    const good = (await storage.get(idOf(root.address)))!
    const signed = KeyAuthorization.deserialize(good.keyAuthorization) as KeyAuthorization.Signed
    // The same key, chain and expiry, with a far higher limit, signed by `other`.
    const forged = await Account.signKeyAuthorization(other, {
      key: { publicKey: good.publicKey, type: 'p256' },
      chainId: BigInt(chainId),
      expiry: signed.expiry!,
      limits: [{ token: pathUsd, limit: maxUint128 }],
    })
    const swapped = {
      ...good,
      keyAuthorization: KeyAuthorization.serialize(forged as KeyAuthorization.Signed),
    }
    await storage.set(idOf(root.address), swapped)

    const error = await rejectionOf(loadAccessKey({ root: root.address, chainId, storage }))
    expect(error).toBeInstanceOf(AccessKeyError)
    expect((error as AccessKeyError).reason).toBe('corrupt')
    expect(error.message).toContain(
      `Details: Stored as "${idOf(root.address)}": The key authorization is not signed by the root account.`,
    )
    expect(await storage.get(idOf(root.address))).toEqual(swapped)
  })

  test("another root's whole record (its own root, key and authorization) under this root's id", async () => {
    const storage = memoryAccessKeyStorage()
    const root = privateKeyToAccount(generatePrivateKey())
    const other = privateKeyToAccount(generatePrivateKey())
    await createAccessKey({ root, chainId, currency: pathUsd, storage })
    await createAccessKey({ root: other, chainId, currency: pathUsd, storage })
    const swapped = (await storage.get(idOf(other.address)))!
    await storage.set(idOf(root.address), swapped)

    const error = await rejectionOf(loadAccessKey({ root: root.address, chainId, storage }))
    expect((error as AccessKeyError).reason).toBe('corrupt')
    expect(error.message).toContain('The key signs for another root.')
  })

  test("a record claiming this root, with another root's authorization of its own key", async () => {
    const storage = memoryAccessKeyStorage()
    const root = privateKeyToAccount(generatePrivateKey())
    const other = privateKeyToAccount(generatePrivateKey())
    await createAccessKey({ root, chainId, currency: pathUsd, storage })
    await createAccessKey({ root: other, chainId, currency: pathUsd, storage })
    const swapped = { ...(await storage.get(idOf(other.address)))!, root: root.address }
    await storage.set(idOf(root.address), swapped)

    const error = await rejectionOf(loadAccessKey({ root: root.address, chainId, storage }))
    expect((error as AccessKeyError).reason).toBe('corrupt')
    expect(error.message).toContain('The key authorization is not signed by the root account.')
  })
})

describe('createAccessKey refuses out-of-range parameters before the wallet is asked', () => {
  const year = 365 * 86_400
  test.each([
    [{ limit: maxUint128 + 1n }, `limit must be at most 2^128 - 1, not ${maxUint128 + 1n}.`],
    [{ limit: 2n ** 256n }, `limit must be at most 2^128 - 1, not ${2n ** 256n}.`],
    // Milliseconds where seconds are meant: a key valid for some 55 000 years.
    [{ expiry: Date.now() + 86_400_000 }, 'expiry must be at most one year ahead'],
    [{ expiry: now() + year + 3_600 }, 'expiry must be at most one year ahead'],
  ])('%o', async (override, details) => {
    const signed: string[] = []
    const base = privateKeyToAccount(generatePrivateKey())
    const root = {
      ...base,
      sign: async ({ hash }: { hash: `0x${string}` }) => {
        signed.push(hash)
        return base.sign({ hash })
      },
    }
    const storage = memoryAccessKeyStorage()
    const error = await rejectionOf(
      createAccessKey({ root, chainId, currency: pathUsd, storage, ...override }),
    )
    expect(error).toBeInstanceOf(AccessKeyError)
    expect((error as AccessKeyError).reason).toBe('invalidParameter')
    expect(error.message).toContain(`Details: ${details}`)
    expect(signed).toEqual([])
    expect(await storage.get(idOf(root.address))).toBeUndefined()
  })

  test('a limit of exactly 2^128 - 1 and an expiry a year ahead are accepted', async () => {
    const root = privateKeyToAccount(generatePrivateKey())
    const expiry = now() + year - 60
    const key = await createAccessKey({
      root,
      chainId,
      currency: pathUsd,
      limit: maxUint128,
      expiry,
      storage: memoryAccessKeyStorage(),
    })
    expect(key.limits).toEqual([{ token: pathUsd, limit: maxUint128 }])
    expect(key.expiry).toBe(expiry)
  })
})
