import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Addresses } from 'viem/tempo'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { CliError, CliUsageError, formatError } from '../../src/cli/errors.js'
import {
  formatAmount,
  formatTable,
  formatTimeLeft,
  formatWhen,
  toJson,
} from '../../src/cli/output.js'
import { ChannelError, ChannelStoreError } from '../../src/index.js'
import { AnvilStartError } from '../../src/testing/index.js'
import { version } from '../../src/version.js'
import { linesOf, runCli } from '../support/cli.js'

const channelId = `0x${'12'.repeat(32)}`
/** A well-formed key that is no one's: it must never be printed. */
const privateKey = `0x${'5e'.repeat(32)}`

describe.concurrent('help', () => {
  test.each([
    [['--help'], 'Usage: viem-mpp <command> [options]'],
    [['-h'], 'Usage: viem-mpp <command> [options]'],
    [['channels', '--help'], 'Usage: viem-mpp channels <command> [options]'],
    [['channels', 'list', '--help'], 'Usage: viem-mpp channels list [options]'],
    [['channels', 'close', '--help'], 'Usage: viem-mpp channels close <channelId> [--url URL]'],
    [
      ['channels', 'withdraw', '-h'],
      'Usage: viem-mpp channels withdraw <channelId> [--wait] [options]',
    ],
    [['channels', 'sync', '--help'], 'Usage: viem-mpp channels sync [--from-block N] [options]'],
    [['localnet', '--help'], 'Usage: viem-mpp localnet [options]'],
  ])('viem-mpp %j: exit 0, the usage on stdout', async (args, usage) => {
    const run = await runCli(args)
    expect(run).toMatchObject({ code: 0, stderr: '' })
    expect(run.stdout.startsWith(`${usage}`)).toBe(true)
  })

  test('every option of a command is in its help', async () => {
    const { stdout } = await runCli(['channels', 'list', '--help'])
    for (const flag of ['--store', '--rpc-url', '--json', '--verbose', '--help'])
      expect(stdout).toContain(flag)
    const close = await runCli(['channels', 'close', '--help'])
    expect(close.stdout).toContain('--url URL')
    const withdraw = await runCli(['channels', 'withdraw', '--help'])
    expect(withdraw.stdout).toContain('--wait')
    const sync = await runCli(['channels', 'sync', '--help'])
    expect(sync.stdout).toContain('--from-block N')
  })

  test('no command: the usage, exit 2; --version: the package version', async () => {
    expect(await runCli([])).toMatchObject({ code: 2, stderr: '' })
    expect(await runCli(['channels'])).toMatchObject({ code: 2, stderr: '' })
    expect(await runCli(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' })
  })
})

describe.concurrent('usage errors: one line on stderr, exit 2', () => {
  test.each([
    [['nope'], "viem-mpp: unknown command 'nope' (see `viem-mpp --help`)"],
    [['--nope'], "viem-mpp: unknown option '--nope' (see `viem-mpp --help`)"],
    [['channels', 'open'], "viem-mpp: unknown command 'open' (see `viem-mpp channels --help`)"],
    [
      ['channels', 'list', '--bogus'],
      "viem-mpp: Unknown option '--bogus' (see `viem-mpp channels list --help`)",
    ],
    [
      ['channels', 'list', 'extra'],
      "viem-mpp: unexpected argument 'extra' (see `viem-mpp channels list --help`)",
    ],
    [['channels', 'close'], 'viem-mpp: missing <channelId> (see `viem-mpp channels close --help`)'],
    [
      ['channels', 'withdraw', '0x12'],
      "viem-mpp: <channelId> must be 0x and 64 hex digits, not '0x12' (see `viem-mpp channels withdraw --help`)",
    ],
    [
      ['channels', 'close', channelId, '--url'],
      "viem-mpp: Option '--url <value>' argument missing (see `viem-mpp channels close --help`)",
    ],
    [
      ['channels', 'sync', '--from-block=-1'],
      "viem-mpp: --from-block must be an integer from 0 to 9007199254740991, not '-1' (see `viem-mpp channels sync --help`)",
    ],
    [
      ['channels', 'sync', '--from-block', '-1'],
      "viem-mpp: Option '--from-block' argument is ambiguous (see `viem-mpp channels sync --help`)",
    ],
    [
      ['localnet', '--port', '70000'],
      "viem-mpp: --port must be an integer from 0 to 65535, not '70000' (see `viem-mpp localnet --help`)",
    ],
    [
      ['localnet', '--chain-id', 'abc'],
      "viem-mpp: --chain-id must be an integer from 1 to 9007199254740991, not 'abc' (see `viem-mpp localnet --help`)",
    ],
  ])('viem-mpp %j', async (args, line) => {
    expect(await runCli(args)).toEqual({ code: 2, stdout: '', stderr: `${line}\n` })
  })

  test('a URL that is not one is not quoted (it may hold a key)', async () => {
    const run = await runCli(['channels', 'sync', '--rpc-url', 'secret-key-123'])
    expect(run).toEqual({
      code: 2,
      stdout: '',
      stderr: 'viem-mpp: --rpc-url is not a URL (see `viem-mpp channels sync --help`)\n',
    })
    const ftp = await runCli(['channels', 'close', channelId, '--url', 'ftp://h/secret'])
    expect(ftp.stderr).toBe(
      'viem-mpp: --url must be an http: or https: URL (see `viem-mpp channels close --help`)\n',
    )
  })
})

describe('failures: one line on stderr, exit 1, no secrets', () => {
  // A directory for each test (these run one at a time: the concurrent ones above need none).
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'viem-mpp-cli-unit-'))
  })
  afterEach(() => rm(dir, { recursive: true, force: true }))

  test('no --rpc-url and nothing to take the chain from: says why', async () => {
    const withKey = await runCli(['channels', 'withdraw', channelId], {
      TEMPO_PRIVATE_KEY: privateKey,
    })
    expect(withKey).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'viem-mpp: --rpc-url is needed: TEMPO_PRIVATE_KEY is for no chain in particular (see `viem-mpp channels withdraw --help`)\n',
    })
    await mkdir(join(dir, 'wallet'))
    await writeFile(
      join(dir, 'wallet', 'keys.toml'),
      `[[keys]]\nchain_id = 4217\nkey = "${privateKey}"\n\n[[keys]]\nchain_id = 42431\nkey = "${privateKey}"\n`,
    )
    const twoChains = await runCli(['channels', 'sync'], { TEMPO_HOME: dir })
    expect(twoChains.code).toBe(2)
    expect(twoChains.stderr).toBe(
      'viem-mpp: --rpc-url is needed: the keys in keys.toml are for chains 4217, 42431 (see `viem-mpp channels sync --help`)\n',
    )
  })

  test('an RPC that does not answer: its origin only, and what to check; the causes with --verbose', async () => {
    const url = 'http://user:password@127.0.0.1:9/secret-path?key=secret-query'
    const env = { TEMPO_PRIVATE_KEY: privateKey }
    const quiet = await runCli(['channels', 'sync', '--rpc-url', url], env)
    expect(quiet).toEqual({
      code: 1,
      stdout: '',
      stderr: 'viem-mpp: No JSON-RPC node answers at http://127.0.0.1:9.\n  Check --rpc-url.\n',
    })
    const verbose = await runCli(['channels', 'sync', '--rpc-url', url, '--verbose'], env)
    expect(verbose.code).toBe(1)
    const lines = linesOf(verbose.stderr)
    expect(lines[0]).toBe('viem-mpp: No JSON-RPC node answers at http://127.0.0.1:9.')
    expect(lines).toContain('  caused by HttpRequestError: HTTP request failed.')
    expect(lines.at(-1)).toBe('  caused by Error: bad port')
    expect(verbose.stderr).not.toMatch(/secret|password|user@|5e5e5e/)
  })

  test('a malformed keys.toml: one line, its key never quoted', async () => {
    await mkdir(join(dir, 'wallet'))
    await writeFile(join(dir, 'wallet', 'keys.toml'), `[[keys]]\nkey = "${privateKey}\n`)
    for (const verbose of [[], ['--verbose']]) {
      const run = await runCli(['channels', 'sync', ...verbose], { TEMPO_HOME: dir })
      expect(run.code).toBe(1)
      expect(linesOf(run.stderr)[0]).toBe(
        `viem-mpp: ${join(dir, 'wallet', 'keys.toml')} is not valid TOML (line 2).`,
      )
      expect(run.stderr).not.toContain('5e5e5e')
    }
  })

  test('list with no store yet (the default path): no channels, and no file made', async () => {
    const home = join(dir, 'home')
    const path = join(home, 'wallet', 'channels.db')
    expect(await runCli(['channels', 'list'], { TEMPO_HOME: home })).toEqual({
      code: 0,
      stdout: 'No channels.\n',
      stderr: '',
    })
    expect(await runCli(['channels', 'list', '--json'], { TEMPO_HOME: home })).toEqual({
      code: 0,
      stdout: '[]\n',
      stderr: '',
    })
    expect(existsSync(path)).toBe(false)
  })

  test('list --store naming no file (a typo): one line saying so, exit 1, no file made', async () => {
    const home = join(dir, 'home')
    const path = join(dir, 'chanels.db')
    expect(await runCli(['channels', 'list', '--store', path], { TEMPO_HOME: home })).toEqual({
      code: 1,
      stdout: '',
      stderr: `viem-mpp: No channel store at ${path}: check --store (the default is ${join(home, 'wallet', 'channels.db')}).\n`,
    })
    expect(existsSync(path)).toBe(false)
  })

  test('a corrupt store: its line, the file and what to do, exit 1, the file left as it is', async () => {
    const path = join(dir, 'channels.db')
    await writeFile(path, 'garbage, not SQLite')
    const run = await runCli(['channels', 'list', '--store', path], {
      TEMPO_PRIVATE_KEY: privateKey,
    })
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: [
        'viem-mpp: The channel database is corrupt; it was left as it is.',
        `  File: ${path}`,
        '  It may record open channels and their deposits: move it aside (or restore a backup) rather than deleting it, and recover the channels from the chain with `viem-mpp channels sync`.',
        '',
      ].join('\n'),
    })
    const verbose = await runCli(['channels', 'list', '--store', path, '--verbose'])
    expect(linesOf(verbose.stderr)).toContain(`  File: ${path}`)
    expect(await readFile(path, 'utf8')).toBe('garbage, not SQLite')
  })
})

describe('formatError', () => {
  test('one line: our short message, or a foreign one with its innermost cause', () => {
    const fetchFailed = Object.assign(new TypeError('fetch failed'), {
      cause: new Error('connect ECONNREFUSED 127.0.0.1:8545'),
    })
    const foreign = Object.assign(new Error('HTTP request failed.\n\nURL: http://h/key'), {
      shortMessage: 'HTTP request failed.',
      cause: fetchFailed,
    })
    expect(formatError(foreign, { verbose: false })).toBe(
      'viem-mpp: HTTP request failed: connect ECONNREFUSED 127.0.0.1:8545\n',
    )
    const ours = new CliError('No key for chain 1.', { cause: foreign, metaMessages: ['Set one.'] })
    // Our own error's hint says what to do: shown without --verbose.
    expect(formatError(ours, { verbose: false })).toBe(
      'viem-mpp: No key for chain 1.\n  Set one.\n',
    )
    expect(formatError(ours, { verbose: true })).toBe(
      [
        'viem-mpp: No key for chain 1.',
        '  Set one.',
        '  caused by Error: HTTP request failed.',
        '  caused by TypeError: fetch failed',
        '  caused by Error: connect ECONNREFUSED 127.0.0.1:8545',
        '',
      ].join('\n'),
    )
    expect(formatError(new CliUsageError('bad', { command: 'localnet' }), { verbose: false })).toBe(
      'viem-mpp: bad (see `viem-mpp localnet --help`)\n',
    )
  })

  test("hints name the CLI's commands and flags, not the library's functions and options", () => {
    const missing = new AnvilStartError('anvil binary not found at /nowhere/anvil.', {
      metaMessages: ['Pass `anvilBinary` with the path to an anvil 1.7.x binary.'],
    })
    expect(formatError(missing, { verbose: false })).toBe(
      [
        'viem-mpp: anvil binary not found at /nowhere/anvil.',
        '  Pass `--anvil-binary <path>` with the path to an anvil 1.7.x binary.',
        '',
      ].join('\n'),
    )
    const channelId = `0x${'ab'.repeat(32)}` as const
    const unreachable = new ChannelError({
      reason: 'unreachable',
      message: 'The server at https://rpc.example could not be reached; the channel stays open.',
      channelId,
      details: ['withdrawChannel() gets the deposit back without it, or closeChannel() later.'],
    })
    expect(linesOf(formatError(unreachable, { verbose: false }))[1]).toBe(
      `  \`viem-mpp channels withdraw ${channelId}\` gets the deposit back without it, or \`viem-mpp channels close ${channelId}\` later.`,
    )
  })

  test('URLs cut to their origin, secrets blanked, long hints cut', () => {
    const error = new CliError(`Refused by https://u:p@rpc.example/v1/KEY?x=1 for ${privateKey}.`, {
      metaMessages: [`Body: ${'ab'.repeat(500)}`],
    })
    const text = formatError(error, { verbose: true, secrets: [privateKey.slice(2)] })
    expect(linesOf(text)[0]).toBe('viem-mpp: Refused by https://rpc.example for 0x<redacted>.')
    expect(linesOf(text)[1]).toHaveLength(240)
    expect(text).not.toMatch(/KEY|u:p|5e5e/)
  })
})

describe('output', () => {
  test('amounts in pathUSD (6 decimals), others by a short address', () => {
    expect(formatAmount(1_000_000n, Addresses.pathUsd)).toBe('1 pathUSD')
    expect(formatAmount(997_000n, Addresses.pathUsd)).toBe('0.997 pathUSD')
    expect(formatAmount(1n, Addresses.pathUsd)).toBe('0.000001 pathUSD')
    expect(formatAmount(0n, Addresses.pathUsd)).toBe('0 pathUSD')
    expect(formatAmount(2_500_000n, '0x20c0000000000000000000000000000000000001')).toBe(
      '2.5 0x20c0…0001',
    )
  })

  test('time left and when', () => {
    expect(formatTimeLeft(1_000_900, 1_000_000)).toBe('15m 0s')
    expect(formatTimeLeft(1_000_059, 1_000_000)).toBe('59s')
    expect(formatTimeLeft(1_007_300, 1_000_000)).toBe('2h 1m')
    expect(formatTimeLeft(1_000_000, 1_000_000)).toBe('now')
    expect(formatTimeLeft(999_000, 1_000_000)).toBe('now')
    expect(formatWhen(1_000_900, 1_000_000)).toBe('1970-01-12 14:01:40 UTC (in 15m 0s)')
    expect(formatWhen(1_000_000, 1_000_900)).toBe('1970-01-12 13:46:40 UTC (now)')
  })

  test('a table, and JSON with bigints as decimal strings and undefined as null', () => {
    expect(formatTable(['ID', 'STATE'], [['0x01', 'closeRequested']])).toBe(
      'ID    STATE\n0x01  closeRequested',
    )
    expect(JSON.parse(toJson([{ deposit: 10n ** 30n, origin: undefined, chainId: 1 }]))).toEqual([
      { deposit: '1000000000000000000000000000000', origin: null, chainId: 1 },
    ])
  })
})

describe('formatError, a store that cannot be used', () => {
  test('the one line names the file and why it cannot be opened', () => {
    const error = new ChannelStoreError({
      reason: 'unavailable',
      path: '/home/me/.tempo/wallet',
      cause: new Error('unable to open database file'),
    })
    expect(formatError(error, { verbose: false })).toBe(
      'viem-mpp: The channel database cannot be used (/home/me/.tempo/wallet): unable to open database file\n',
    )
  })

  test('a corrupt one keeps its own line, then the file and what to do', () => {
    const error = new ChannelStoreError({
      reason: 'corrupt',
      path: '/tmp/channels.db',
      cause: new Error('file is not a database'),
    })
    expect(formatError(error, { verbose: false })).toBe(
      [
        'viem-mpp: The channel database is corrupt; it was left as it is.',
        '  File: /tmp/channels.db',
        '  It may record open channels and their deposits: move it aside (or restore a backup) rather than deleting it, and recover the channels from the chain with `viem-mpp channels sync`.',
        '',
      ].join('\n'),
    )
  })
})
