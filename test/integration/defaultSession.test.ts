/**
 * mppHttp with no provider, in Node: a session where the server offers one (a charge otherwise),
 * its channel kept in $TEMPO_HOME/wallet/channels.db and reused by later runs of a script; and,
 * with no usable key, a PaymentRequiredError that says how to set one up and why each key found
 * did not fit.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts'
import { afterEach, beforeEach, expect, test, vi } from 'vitest'
import { defaultMaxAmount, defaultMaxDeposit, PaymentRequiredError } from '../../src/index.js'
import { useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'
import { sessionHelpers } from '../support/sessions.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const localnet = useLocalnet()
const { paidClient, blockNumber, channelEvents } = sessionHelpers(localnet)

let home: string
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'viem-mpp-home-'))
  mkdirSync(join(home, 'wallet'))
  vi.stubEnv('TEMPO_HOME', home)
})
afterEach(() => {
  vi.unstubAllEnvs()
  vi.restoreAllMocks()
  rmSync(home, { recursive: true, force: true })
})

const payer = (index: number) => localnet.net.accounts[index]!

test('defaultMaxDeposit is 1 USD, within the per-payment cap', () => {
  expect(defaultMaxDeposit).toBe(1_000_000n)
  expect(defaultMaxDeposit <= defaultMaxAmount).toBe(true)
})

test('TEMPO_PRIVATE_KEY alone pays a server offering a session and a charge with a session', async () => {
  const rpc = await localnet.startPaidRpc({ intent: ['session', 'charge'], price: 1_000n })
  vi.stubEnv('TEMPO_PRIVATE_KEY', payer(7).privateKey)
  const from = await blockNumber()

  const client = paidClient(rpc.url)
  expect(await client.getChainId()).toBe(1337)
  expect(await client.getChainId()).toBe(1337)

  expect(rpc.counters.payments).toMatchObject({ charge: 0, open: 1, voucher: 1 })
  expect(await channelEvents('ChannelOpened', payer(7).address, from)).toHaveLength(1)
})

test('two runs of a script with only TEMPO_PRIVATE_KEY set open one channel between them', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ intent: ['session', 'charge'], price: 1_000n })
  const from = await blockNumber()
  const run = () =>
    promisify(execFile)(
      join(root, 'node_modules/.bin/node'),
      [
        '--import',
        'tsx',
        'test/fixtures/defaultSessionRun.ts',
        rpc.url,
        net.rpcUrl,
        String(net.chain.id),
      ],
      {
        cwd: root,
        env: { ...process.env, TEMPO_PRIVATE_KEY: payer(8).privateKey, TEMPO_HOME: home },
      },
    )

  const first = await run()
  const second = await run()

  expect(JSON.parse(first.stdout)).toHaveLength(2)
  expect(JSON.parse(second.stdout)).toHaveLength(2)
  expect(await channelEvents('ChannelOpened', payer(8).address, from)).toHaveLength(1)
  // The first run opened the channel (its first voucher in the open); the other three calls paid vouchers.
  expect(rpc.counters.payments).toMatchObject({ charge: 0, open: 1, voucher: 3 })
})

test('a charge-only server is paid with a charge', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price: 1_000n })
  vi.stubEnv('TEMPO_PRIVATE_KEY', payer(7).privateKey)
  const before = await localnet.balanceOf(rpc.payee)

  expect(await paidClient(rpc.url).getChainId()).toBe(1337)

  expect(rpc.counters.payments).toMatchObject({ charge: 1, open: 0, voucher: 0 })
  expect((await localnet.balanceOf(rpc.payee)) - before).toBe(1_000n)
})

test('without node:sqlite (Node 20) the default provider pays charges only: no deposit locked where no store records it', async () => {
  const rpc = await localnet.startPaidRpc({ intent: ['session', 'charge'], price: 1_000n })
  vi.stubEnv('TEMPO_PRIVATE_KEY', payer(9).privateKey)
  const getBuiltinModule = process.getBuiltinModule
  vi.spyOn(process, 'getBuiltinModule').mockImplementation(((id: string) =>
    id === 'node:sqlite' ? undefined : getBuiltinModule(id)) as typeof getBuiltinModule)
  const from = await blockNumber()
  const warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})

  const client = paidClient(rpc.url)
  expect(await client.getChainId()).toBe(1337)
  expect(await client.getChainId()).toBe(1337)
  expect(await paidClient(rpc.url).getChainId()).toBe(1337)
  // Said once, for the process.
  expect(warnings.mock.calls).toEqual([
    [
      expect.stringMatching(
        /^this Node \(v[\d.]+\) has no node:sqlite, so the default provider pays charges only: on Node >= 22\.13 it would pay sessions/,
      ),
      { type: 'ViemMppWarning', code: 'VIEM_MPP_CHARGES_ONLY' },
    ],
  ])

  expect(rpc.counters.payments).toMatchObject({ charge: 3, open: 0, voucher: 0 })
  expect(await channelEvents('ChannelOpened', payer(9).address, from)).toEqual([])
  expect(process.getBuiltinModule).toHaveBeenCalledWith('node:sqlite')
  expect(existsSync(join(home, 'wallet', 'channels.db'))).toBe(false)

  // A server offering sessions only: passed over, saying why and what to do.
  const sessionsOnly = await localnet.startPaidRpc({ intent: 'session', price: 1_000n })
  const error = await rejectionOf(paidClient(sessionsOnly.url).getChainId())
  expect(error).toBeInstanceOf(PaymentRequiredError)
  expect((error as PaymentRequiredError).reason).toBe('noSupportedChallenge')
  expect((error as PaymentRequiredError).message).toContain(
    'needs node:sqlite (Node >= 22.13); on this Node it pays charges only. Pass `provider: session({ account, client, store })` to pay sessions here.',
  )
  expect(sessionsOnly.counters.payments).toMatchObject({ open: 0, voucher: 0 })
  await sessionsOnly.stop()
})

test('no key at all: PaymentRequiredError with the set-up guidance and the offered challenges', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ intent: ['session', 'charge'], price: 1_000n })

  const error = await rejectionOf(paidClient(rpc.url).getChainId())

  expect(error).toBeInstanceOf(PaymentRequiredError)
  expect((error as PaymentRequiredError).reason).toBe('noProvider')
  const keysToml = join(home, 'wallet', 'keys.toml')
  expect((error as PaymentRequiredError).metaMessages).toEqual([
    `Endpoint: ${new URL(rpc.url).origin}`,
    'Offered:',
    `  tempo/session: 1000 base units of ${net.currency}`,
    `  tempo/charge: 1000 base units of ${net.currency}`,
    `No key found: TEMPO_PRIVATE_KEY is not set, and ${keysToml} holds no [[keys]] entry (or does not exist).`,
    'To pay, authorize a funded Tempo key. In Node, the transport finds one by itself:',
    '  - TEMPO_PRIVATE_KEY=0x… in the environment, or',
    '  - a [[keys]] entry for this chain in $TEMPO_HOME/wallet/keys.toml (TEMPO_HOME defaults to',
    '    ~/.tempo), which the Tempo CLI writes: `tempo wallet login`.',
    'Or give the transport a provider:',
    "  mppHttp(url, { provider: tempo({ account, client }) })   // import { tempo } from 'viem-mpp'",
    'where `client` is a viem client for the chain that is not this paid transport.',
  ])
  expect(rpc.counters).toMatchObject({ requests: 1, challenges: 1, forwarded: 0 })
})

test('keys.toml keys that do not fit: the error says why each one did not, quoting no key', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ intent: ['session', 'charge'], price: 1_000n })
  const otherUsd = '0x20c0000000000000000000000000000000000001'
  const keys = [generatePrivateKey(), generatePrivateKey(), generatePrivateKey()]
  const [other, expired, limited] = keys.map((key) => privateKeyToAddress(key))
  const wallet = privateKeyToAddress(generatePrivateKey())
  writeFileSync(
    join(home, 'wallet', 'keys.toml'),
    [
      `[[keys]]\nchain_id = 4217\nkey_address = "${other}"\nkey = "${keys[0]}"`,
      `[[keys]]\nchain_id = ${net.chain.id}\nkey_address = "${expired}"\nkey = "${keys[1]}"\nexpiry = 1700000000`,
      `[[keys]]\nchain_id = ${net.chain.id}\nwallet_address = "${wallet}"\nkey_address = "${limited}"\nkey = "${keys[2]}"\nlimits = [{ currency = "${otherUsd}", limit = "5000000" }]`,
      `[[keys]]\nwallet_type = "passkey"\nchain_id = ${net.chain.id}\nwallet_address = "${wallet}"`,
    ].join('\n'),
  )

  const error = await rejectionOf(paidClient(rpc.url).getChainId())

  expect(error).toBeInstanceOf(PaymentRequiredError)
  expect((error as PaymentRequiredError).reason).toBe('noProvider')
  const { metaMessages = [] } = error as PaymentRequiredError
  const found = metaMessages.indexOf(`No key in ${join(home, 'wallet', 'keys.toml')} fits:`)
  expect(found).toBe(4)
  expect(metaMessages.slice(found + 1, found + 5)).toEqual([
    `  keys[0] (key ${other}): for chain 4217, not 1337`,
    `  keys[1] (key ${expired}): expired at 2023-11-14T22:13:20.000Z`,
    `  keys[2] (key ${limited}, wallet ${wallet}): spending limits for ${otherUsd} only, not ${net.currency}`,
    `  keys[3] (wallet ${wallet}): no inline key (its key is held elsewhere, e.g. by a passkey)`,
  ])
  expect(error.message).toContain('tempo wallet login')
  for (const key of keys)
    expect(error.message.toLowerCase()).not.toContain(key.slice(2).toLowerCase())
  expect(rpc.counters).toMatchObject({ requests: 1, challenges: 1, forwarded: 0 })
})
