import { KeyAuthorization } from 'ox/tempo'
import { maxUint128 } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Account } from 'viem/tempo'
import { describe, expect, test } from 'vitest'
import {
  AccessKeyError,
  createAccessKey,
  loadAccessKey,
  memoryAccessKeyStorage,
} from '../../src/index.js'
import { rejectionOf } from '../support/rejection.js'

// A hostile review of in-page access keys: records swapped by another script of the page, and
// parameters a caller gets wrong.

const pathUsd = '0x20c0000000000000000000000000000000000000'
const chainId = 1337
const now = () => Math.floor(Date.now() / 1000)
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
