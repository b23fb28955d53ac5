import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KeyAuthorization } from 'ox/tempo'
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts'
import { Account } from 'viem/tempo'
import { describe, expect, test } from 'vitest'
import { discoverAccount, KeyDiscoveryError, keysTomlPath } from '../../src/node/index.js'
import { rejectionOf } from '../support/rejection.js'
import { tempDir } from '../support/tempDir.js'

const pathUsd = '0x20c0000000000000000000000000000000000000'
const alphaUsd = '0x20c0000000000000000000000000000000000001'

/** A TEMPO_HOME with `keys.toml` holding `entries` (TOML text of `[[keys]]` tables). */
function tempoHome(...entries: string[]) {
  const home = tempDir('viem-mpp-keys-')
  mkdirSync(join(home, 'wallet'))
  writeFileSync(join(home, 'wallet', 'keys.toml'), entries.join('\n'))
  return home
}

const entry = (fields: Record<string, string | number>, limits = '') =>
  `[[keys]]\n${Object.entries(fields)
    .map(([name, value]) => `${name} = ${typeof value === 'string' ? `"${value}"` : value}`)
    .join('\n')}\n${limits}\n`

describe('discoverAccount', () => {
  test('TEMPO_PRIVATE_KEY, trimmed, signs directly and wins over keys.toml', async () => {
    const key = generatePrivateKey()
    const home = tempoHome(entry({ chain_id: 1337, key: generatePrivateKey() }))
    const account = await discoverAccount({
      chainId: 1337,
      env: { TEMPO_PRIVATE_KEY: `  ${key}\n`, TEMPO_HOME: home },
    })
    expect(account?.address).toBe(privateKeyToAddress(key))
    expect(account?.source).toBe('root')
  })

  test('a malformed TEMPO_PRIVATE_KEY is refused without being quoted', async () => {
    const error = await rejectionOf(
      discoverAccount({ chainId: 1337, env: { TEMPO_PRIVATE_KEY: '0xdeadbeefsecret' } }),
    )
    expect(error).toBeInstanceOf(KeyDiscoveryError)
    expect(error.message).not.toContain('deadbeef')
  })

  test('nothing configured: undefined', async () => {
    const home = tempDir('viem-mpp-keys-')
    expect(await discoverAccount({ chainId: 1337, env: { TEMPO_HOME: home } })).toBeUndefined()
  })

  test('TEMPO_HOME defaults to ~/.tempo', () => {
    expect(keysTomlPath({ HOME: '/home/alice' })).toMatch(/\.tempo\/wallet\/keys\.toml$/)
    expect(keysTomlPath({ TEMPO_HOME: '/srv/tempo' })).toBe('/srv/tempo/wallet/keys.toml')
  })

  test('keys.toml: the chain, expiry and currency limits select the key', async () => {
    const [otherChain, expired, limitedElsewhere, usable] = Array.from({ length: 4 }, () =>
      generatePrivateKey(),
    )
    const home = tempoHome(
      entry({ chain_id: 4217, key: otherChain! }),
      entry({ chain_id: 1337, key: expired!, expiry: 1_000 }),
      entry(
        { chain_id: 1337, key: limitedElsewhere! },
        `limits = [{ currency = "${alphaUsd}", limit = "1000" }]`,
      ),
      entry(
        { chain_id: 1337, key: usable!, expiry: 4_000_000_000 },
        `limits = [{ currency = "${pathUsd}", limit = "1000" }]`,
      ),
    )
    const account = await discoverAccount({
      chainId: 1337,
      currency: pathUsd,
      env: { TEMPO_HOME: home },
    })
    expect(account?.address).toBe(privateKeyToAddress(usable!))
  })

  test("keys.toml: a passkey wallet's inline key comes first", async () => {
    const [local, passkey] = [generatePrivateKey(), generatePrivateKey()]
    const home = tempoHome(
      entry({ chain_id: 1337, key: local, wallet_type: 'local' }),
      entry({ chain_id: 1337, key: passkey, wallet_type: 'passkey' }),
    )
    const account = await discoverAccount({ chainId: 1337, env: { TEMPO_HOME: home } })
    expect(account?.address).toBe(privateKeyToAddress(passkey))
  })

  test('keys.toml: with wallet_address, the key is an access key with its authorization', async () => {
    const root = Account.fromSecp256k1(generatePrivateKey())
    const accessKey = generatePrivateKey()
    const accessKeyAddress = privateKeyToAddress(accessKey)
    const authorization = await root.signKeyAuthorization(
      { accessKeyAddress, keyType: 'secp256k1' },
      { chainId: 1337n, expiry: 4_000_000_000, limits: [{ token: pathUsd, limit: 1_000_000n }] },
    )
    const home = tempoHome(
      entry({
        chain_id: 1337,
        wallet_address: root.address,
        key_type: 'secp256k1',
        key: accessKey,
        key_address: accessKeyAddress,
        key_authorization: KeyAuthorization.serialize(authorization as never),
      }),
    )
    const account = await discoverAccount({ chainId: 1337, env: { TEMPO_HOME: home } })
    expect(account?.source).toBe('accessKey')
    expect(account?.address).toBe(root.address)
    expect((account as { accessKeyAddress?: string }).accessKeyAddress?.toLowerCase()).toBe(
      accessKeyAddress.toLowerCase(),
    )
  })

  test('a malformed keys.toml is refused without quoting its keys', async () => {
    const key = generatePrivateKey()
    const home = tempoHome(`[[keys]]\nchain_id = 1337\nkey = "${key}`)
    const error = await rejectionOf(discoverAccount({ chainId: 1337, env: { TEMPO_HOME: home } }))
    expect(error).toBeInstanceOf(KeyDiscoveryError)
    expect(error.message).toContain('is not valid TOML')
    expect(error.message).not.toContain(key.slice(2, 20))
  })

  test('an unreadable keys.toml (a directory) is refused, saying why; TEMPO_PRIVATE_KEY still wins over it', async () => {
    const home = tempDir('viem-mpp-keys-')
    mkdirSync(join(home, 'wallet', 'keys.toml'), { recursive: true })
    const error = await rejectionOf(discoverAccount({ chainId: 1337, env: { TEMPO_HOME: home } }))
    expect(error).toBeInstanceOf(KeyDiscoveryError)
    expect((error as KeyDiscoveryError).shortMessage).toBe(
      `${join(home, 'wallet', 'keys.toml')} cannot be read (EISDIR).`,
    )
    const key = generatePrivateKey()
    const account = await discoverAccount({
      chainId: 1337,
      env: { TEMPO_HOME: home, TEMPO_PRIVATE_KEY: key },
    })
    expect(account?.address).toBe(privateKeyToAddress(key))
  })

  test('a malformed entry is refused, saying which field', async () => {
    const home = tempoHome(entry({ chain_id: 1337, key: '0x1234' }))
    const error = await rejectionOf(discoverAccount({ chainId: 1337, env: { TEMPO_HOME: home } }))
    expect(error).toBeInstanceOf(KeyDiscoveryError)
    expect(error.message).toContain('keys.0.key')
  })
})
