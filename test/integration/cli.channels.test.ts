import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { type Address, getAddress, type Hex, parseEventLogs } from 'viem'
import { Addresses } from 'viem/tempo'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { session } from '../../src/index.js'
import { type FileChannelStore, fileChannelStore } from '../../src/node/index.js'
import { linesOf, runCli, spawnCli } from '../support/cli.js'
import { tip20, useLocalnet } from '../support/localnet.js'
import { sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const { accountOf, paidClient, chainClient, keyOf, plain, channelEvents, blockNumber } =
  sessionHelpers(localnet)

let dir: string
let storePath: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'viem-mpp-cli-'))
  storePath = join(dir, 'channels.db')
})
afterEach(() => rm(dir, { recursive: true, force: true }))

/** `viem-mpp channels args` as dev account `index`, on the test's store and the localnet. */
async function channels(index: number, args: readonly string[], options: { rpcUrl?: string } = {}) {
  const { privateKey } = localnet.net.accounts[index] ?? {}
  const run = await runCli(
    ['channels', ...args, '--store', storePath, '--rpc-url', options.rpcUrl ?? localnet.net.rpcUrl],
    { TEMPO_PRIVATE_KEY: privateKey },
  )
  // Whatever happens, the key is never printed.
  expect(`${run.stdout}${run.stderr}`).not.toContain(privateKey?.slice(2))
  return run
}

/**
 * Three paid calls from dev account `index` on a session kept in the test's store file, which is
 * then closed (as when a script ends: the channel is released with its exact ledger).
 */
async function threeCalls(index: number) {
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const store = fileChannelStore(storePath)
  try {
    const provider = session({ account: accountOf(index), client: chainClient(), store })
    const client = paidClient(rpc.url, { provider })
    for (let i = 0; i < 3; i++) await client.getChainId()
    const entry = await store.forOrigin(rpc.url).get(keyOf(rpc.payee))
    if (!entry) throw new Error('no channel stored')
    return { rpc, channelId: entry.channelId as Hex }
  } finally {
    await store.close()
  }
}

/** The pathUSD the reserve sent to `to` in transaction `hash`. */
async function refundIn(hash: Hex, to: Address) {
  const { logs } = await plain().getTransactionReceipt({ hash })
  return parseEventLogs({ abi: tip20, logs, eventName: 'Transfer' })
    .filter(
      (log) =>
        log.args.from.toLowerCase() === Addresses.tip20ChannelReserve.toLowerCase() &&
        log.args.to.toLowerCase() === to.toLowerCase(),
    )
    .reduce((sum, log) => sum + log.args.amount, 0n)
}

async function listJson(index: number) {
  const run = await channels(index, ['list', '--json'])
  expect(run).toMatchObject({ code: 0, stderr: '' })
  return JSON.parse(run.stdout) as Record<string, unknown>[]
}

test('list after three paid calls: the channel, its deposit and cumulative amount exact', async () => {
  const { rpc, channelId } = await threeCalls(0)
  const payer = accountOf(0).address

  expect(await listJson(0)).toEqual([
    {
      channelId,
      state: 'open',
      deposit: '1000000',
      cumulativeAmount: '3000',
      exact: true,
      lease: null,
      acceptedAmount: null,
      settledAmount: '0',
      refundable: '997000',
      withdrawableAt: null,
      origin: new URL(rpc.url).origin,
      chainId: localnet.net.chain.id,
      escrow: Addresses.tip20ChannelReserve,
      currency: getAddress(Addresses.pathUsd),
      payer,
      payee: rpc.payee,
      authorizedSigner: payer,
      refreshed: true,
    },
  ])

  const table = await channels(0, ['list'])
  expect(table.code).toBe(0)
  const [header, row, ...rest] = linesOf(table.stdout)
  expect(rest).toEqual([])
  expect(header?.split(/\s{2,}/)).toEqual([
    'CHANNEL',
    'STATE',
    'DEPOSIT',
    'SIGNED',
    'HELD BY',
    'REFUNDABLE',
    'WITHDRAWABLE',
    'ORIGIN',
  ])
  expect(row?.split(/\s{2,}/)).toEqual([
    channelId,
    'open',
    '1 pathUSD',
    '0.003 pathUSD',
    '-',
    '0.997 pathUSD',
    '-',
    new URL(rpc.url).origin,
  ])
})

test('close settles exactly what the server accepted and refunds the rest; then it is gone', async () => {
  const { rpc, channelId } = await threeCalls(1)
  const payer = accountOf(1).address
  const before = await localnet.balanceOf(payer)

  const closed = await channels(1, ['close', channelId, '--url', rpc.url, '--json'])
  expect(closed.code).toBe(0)
  const result = JSON.parse(closed.stdout)
  expect(result).toMatchObject({ channelId, settled: '3000', refunded: '997000' })
  // The payee sends the close: the payer pays no fee and gets the rest of its deposit, exactly.
  expect((await localnet.balanceOf(payer)) - before).toBe(997_000n)
  expect(await refundIn(result.txHash, payer)).toBe(997_000n)
  expect(rpc.counters.payments.close).toBe(1)
  expect(await listJson(1)).toEqual([])

  // A closed channel: one line, exit 1, nothing sent.
  const again = await channels(1, ['withdraw', channelId])
  expect(again.code).toBe(1)
  expect(linesOf(again.stderr)).toHaveLength(1)
  expect(again.stderr).toMatch(/^viem-mpp: .*closed/i)
  expect(again.stdout).toBe('')
  expect(await localnet.balanceOf(payer)).toBe(before + 997_000n)
})

test('withdraw with the server stopped: the time left, then after the grace period the deposit', async () => {
  const { rpc, channelId } = await threeCalls(2)
  const payer = accountOf(2).address
  await rpc.stop()

  // No --url: tried at the origin the store keeps; the server is gone, so it says what to do.
  const close = await channels(2, ['close', channelId])
  expect(close.code).toBe(1)
  expect(linesOf(close.stderr)).toEqual([
    `viem-mpp: The server at ${new URL(rpc.url).origin} could not be reached; the channel stays open (tried at the origin, all the store keeps: pass --url with the endpoint's URL if the channel was bought at a path; without the server, \`viem-mpp channels withdraw ${channelId}\` gets the deposit back).`,
  ])

  const requested = await channels(2, ['withdraw', channelId])
  expect(requested.code).toBe(0)
  expect(requested.stdout).toMatch(
    new RegExp(
      `^Close requested for channel ${channelId}\\. Its deposit can be withdrawn at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC \\(in 1[45]m \\d+s\\): run this command again then \\(or with --wait\\)\\.\\n$`,
    ),
  )
  expect(requested.stderr).toMatch(/waiting for transaction 0x[0-9a-f]{64}/)
  const [listed] = await listJson(2)
  expect(listed).toMatchObject({ channelId, state: 'closeRequested', deposit: '1000000' })
  const [, row] = linesOf((await channels(2, ['list'])).stdout)
  expect(row?.split(/\s{2,}/).slice(1, 7)).toEqual([
    'closeRequested',
    '1 pathUSD',
    '0.003 pathUSD',
    '-',
    '0.997 pathUSD',
    expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 1[45]m \d+s\)$/),
  ])

  // Again within the grace period: says when, requests nothing twice.
  const from = await blockNumber()
  const early = await channels(2, ['withdraw', channelId, '--json'])
  expect(early.code).toBe(0)
  expect(JSON.parse(early.stdout)).toEqual({
    channelId,
    state: 'closeRequested',
    withdrawableAt: listed?.withdrawableAt,
    txHash: null,
  })
  expect(linesOf(early.stderr)).toEqual([
    expect.stringMatching(/^close grace period: until .* UTC \(in 1[45]m \d+s\)$/),
  ])
  expect(
    await plain().getLogs({ address: Addresses.tip20ChannelReserve, fromBlock: from }),
  ).toEqual([])

  await localnet.net.increaseTime(900)
  const withdrawn = await channels(2, ['withdraw', channelId, '--json'])
  expect(withdrawn.code).toBe(0)
  const result = JSON.parse(withdrawn.stdout)
  // The server never settled: all of the deposit comes back.
  expect(result).toMatchObject({ channelId, state: 'closed', refunded: '1000000' })
  expect(await refundIn(result.txHash, payer)).toBe(1_000_000n)
  expect(await channelEvents('ChannelClosed', payer, from)).toHaveLength(1)

  // A third time: closed, one line, nothing sent.
  const third = await channels(2, ['withdraw', channelId])
  expect(third.code).toBe(1)
  expect(linesOf(third.stderr)).toHaveLength(1)
  expect(await channelEvents('ChannelClosed', payer, from)).toHaveLength(1)
})

test('withdraw --wait: says how long is left, and withdraws once the chain passes the grace period', async () => {
  const { rpc, channelId } = await threeCalls(6)
  const payer = accountOf(6).address
  await rpc.stop()
  const { privateKey } = localnet.net.accounts[6] ?? {}
  const child = spawnCli(
    [
      'channels',
      'withdraw',
      channelId,
      '--wait',
      '--json',
      '--store',
      storePath,
      '--rpc-url',
      localnet.net.rpcUrl,
    ],
    { TEMPO_PRIVATE_KEY: privateKey },
  )
  let stdout = ''
  child.stdout.on('data', (chunk) => {
    stdout += chunk
  })
  const exited = once(child, 'exit')
  const stderr: string[] = []
  for await (const line of createInterface({ input: child.stderr })) {
    stderr.push(line)
    if (/ left$/.test(line)) break
  }
  expect(stderr).toEqual([
    expect.stringMatching(/^requestClose: waiting for transaction 0x[0-9a-f]{64}$/),
    expect.stringMatching(/^close grace period: until .* UTC \(in 1[45]m \d+s\)$/),
    expect.stringMatching(/^close grace period: 1[45]m \d+s left$/),
  ])

  await localnet.net.increaseTime(900)
  expect(await exited).toEqual([0, null])
  const result = JSON.parse(stdout)
  expect(result).toMatchObject({ channelId, state: 'closed', refunded: '1000000' })
  expect(await refundIn(result.txHash, payer)).toBe(1_000_000n)
  expect(`${stdout}${stderr.join('')}`).not.toContain(privateKey?.slice(2))
})

test('sync after the store file is deleted brings the channel back; the next call opens none', async () => {
  const { rpc, channelId } = await threeCalls(3)
  const payer = accountOf(3).address
  for (const suffix of ['', '-wal', '-shm']) await rm(`${storePath}${suffix}`, { force: true })
  // The store named is gone: said so, not listed as empty.
  const gone = await channels(3, ['list', '--json'])
  expect(gone).toMatchObject({ code: 1, stdout: '' })
  expect(linesOf(gone.stderr)).toEqual([
    expect.stringMatching(/^viem-mpp: No channel store at .*channels\.db: check --store/),
  ])

  const synced = await channels(3, ['sync', '--json'])
  expect(synced.code).toBe(0)
  const result = JSON.parse(synced.stdout)
  expect(result.added.map((channel: { channelId: Hex }) => channel.channelId)).toEqual([channelId])
  const [listed, ...others] = await listJson(3)
  expect(others).toEqual([])
  expect(listed).toMatchObject({ channelId, state: 'open', deposit: '1000000', origin: null })

  // The store knows no endpoint for a synced channel: close asks for --url, and says so.
  const noUrl = await channels(3, ['close', channelId])
  expect(noUrl.code).toBe(2)
  expect(linesOf(noUrl.stderr)).toEqual([
    `viem-mpp: the store does not say which endpoint sold channel ${channelId}: pass --url with the endpoint's URL (see \`viem-mpp channels close --help\`)`,
  ])

  const from = await blockNumber()
  let store: FileChannelStore | undefined
  try {
    store = fileChannelStore(storePath)
    const provider = session({ account: accountOf(3), client: chainClient(), store })
    await paidClient(rpc.url, { provider }).getChainId()
  } finally {
    await store?.close()
  }
  expect(await channelEvents('ChannelOpened', payer, from)).toEqual([])
})

test('list without the chain: the rows as stored, marked so, and one line on stderr saying why', async () => {
  const { channelId } = await threeCalls(5)
  const unreachable = 'http://127.0.0.1:9/secret-path'
  const json = await channels(5, ['list', '--json'], { rpcUrl: unreachable })
  expect(json.code).toBe(0)
  expect(linesOf(json.stderr)).toEqual([
    'viem-mpp: not refreshed from the chain (no JSON-RPC node answers at http://127.0.0.1:9): states and deposits are as stored.',
  ])
  expect(JSON.parse(json.stdout)).toEqual([
    expect.objectContaining({ channelId, state: 'open', settledAmount: null, refreshed: false }),
  ])
  const table = await channels(5, ['list'], { rpcUrl: unreachable })
  expect(table.code).toBe(0)
  const [, row] = linesOf(table.stdout)
  expect(row?.split(/\s{2,}/).slice(0, 2)).toEqual([channelId, 'open (stored)'])
})

test('bad input: a line saying why (and what to do, if anything), exit 1, nothing changed', async () => {
  const { channelId } = await threeCalls(4)
  const listed = await listJson(4)
  const stored = await readFile(storePath)

  const unknown = await channels(4, [
    'close',
    `0x${'ab'.repeat(32)}`,
    '--url',
    'http://127.0.0.1:9/v1/secret-path?key=secret-query',
  ])
  // Another payer's channel, and an RPC that does not answer (its path and query never shown).
  const otherPayer = await channels(5, ['withdraw', channelId])
  const unreachable = await channels(4, ['withdraw', channelId], {
    rpcUrl: 'http://user:password@127.0.0.1:9/secret-path?key=secret-query',
  })
  for (const run of [unknown, otherPayer, unreachable]) {
    expect(run.code).toBe(1)
    expect(run.stdout).toBe('')
    expect(run.stderr).toMatch(/^viem-mpp: /)
    // The hints that follow name the CLI's commands, never the library's functions.
    for (const hint of linesOf(run.stderr).slice(1))
      expect(hint).not.toMatch(/\w\(\)|`[a-z]+[A-Z]\w*`/)
    expect(run.stderr).not.toMatch(/secret|password|user/)
  }
  expect(unknown.stderr).toContain(`0x${'ab'.repeat(32)}`)

  // A --url on another origin than the channel's: refused before anything is sent.
  const elsewhere = await channels(4, ['close', channelId, '--url', 'http://127.0.0.1:9/v1/secret'])
  expect(elsewhere.code).toBe(2)
  expect(linesOf(elsewhere.stderr)).toEqual([
    expect.stringMatching(
      new RegExp(
        `^viem-mpp: --url is on http://127\\.0\\.0\\.1:9, but channel ${channelId} was bought from http://127\\.0\\.0\\.1:\\d+ \\(see`,
      ),
    ),
  ])
  expect(unreachable.stderr).toBe(
    'viem-mpp: No JSON-RPC node answers at http://127.0.0.1:9.\n  Check --rpc-url.\n',
  )
  expect(await listJson(4)).toEqual(listed)
  expect(await readFile(storePath)).toEqual(stored)

  // A corrupt store: reported, left as it is.
  await writeFile(storePath, 'not a database')
  const corrupt = await channels(4, ['list'])
  expect(corrupt.code).toBe(1)
  expect(linesOf(corrupt.stderr)).toEqual([
    'viem-mpp: The channel database is corrupt; it was left as it is.',
    `  File: ${storePath}`,
    '  It may record open channels and their deposits: move it aside (or restore a backup) rather than deleting it, and recover the channels from the chain with `viem-mpp channels sync`.',
  ])
  expect(await readFile(storePath, 'utf8')).toBe('not a database')
})

const unknownId = `0x${'11'.repeat(32)}`

test.each([
  ['withdraw', [unknownId]],
  ['close', [unknownId, '--url', 'http://127.0.0.1:9/']],
])(
  'channels %s on a store that does not exist: one-line error, no file or directory created',
  async (command, args) => {
    const storePath = join(dir, 'missing', 'channels.db')
    const { privateKey } = localnet.net.accounts[0] ?? {}
    const run = await runCli(
      ['channels', command, ...args, '--store', storePath, '--rpc-url', localnet.net.rpcUrl],
      { TEMPO_PRIVATE_KEY: privateKey },
    )
    expect(run.code).toBe(1)
    expect(linesOf(run.stderr)).toHaveLength(1)
    expect(run.stderr).toContain(unknownId)
    expect(existsSync(join(dir, 'missing'))).toBe(false)
  },
)
