import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, watch, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { homedir, hostname, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { entryKey } from 'mppx/client'
import { createSqliteChannelStore } from 'mppx/client/node'
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { type ChannelEntry, ChannelStoreError } from '../../src/index.js'
import { fileChannelStore } from '../../src/node/index.js'
import { withLockFile } from '../../src/node/lease.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** `node:sqlite`, which @types/node 20 (the package's Node floor) does not declare. */
const { DatabaseSync } = createRequire(import.meta.url)('node:sqlite') as {
  DatabaseSync: new (
    path: string,
  ) => { exec(sql: string): void; prepare(sql: string): { all(): unknown[] }; close(): void }
}

const entry: ChannelEntry = {
  channelId: `0x${'c1'.repeat(32)}`,
  cumulativeAmount: 12_345_678_901_234_567_890n,
  deposit: 50_000_000n,
  descriptor: {
    payer: '0x1111111111111111111111111111111111111111',
    payee: '0xAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAa',
    operator: '0x0000000000000000000000000000000000000000',
    token: '0x20C0000000000000000000000000000000000000',
    salt: `0x${'5a'.repeat(32)}`,
    authorizedSigner: '0x2222222222222222222222222222222222222222',
    expiringNonceHash: `0x${'e7'.repeat(32)}`,
  },
  escrow: '0x4D50500000000000000000000000000000000000',
  chainId: 31337,
  opened: true,
}
const key = entryKey(entry)
/** A second scope (another payee), so another key. */
const other: ChannelEntry = {
  ...entry,
  channelId: `0x${'c2'.repeat(32)}`,
  descriptor: { ...entry.descriptor, payee: '0xBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBb' },
}

const origin = 'https://rpc.example:8443'
const secretUrl = 'https://user:pw@rpc.example:8443/v1/KEY-123?apikey=SECRET-456'

let dir: string
let path: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'viem-mpp-filestore-'))
  path = join(dir, 'channels.db')
})
afterEach(async () => {
  vi.unstubAllEnvs()
  await rm(dir, { recursive: true, force: true })
})

/** Runs `code` (an ES module, TypeScript imports allowed) in a new Node process of `node`. */
function run(code: string, args: string[] = [], node = process.execPath) {
  return spawn(node, ['--import', 'tsx', '--input-type=module', '-e', code, '--', ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
}

/** The exit code of `child`, once it has exited (`null` if a signal ended it). */
async function exited(child: ChildProcess) {
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
  return child.exitCode
}

/** The first line `child` prints. */
async function firstLine(child: ChildProcess) {
  if (!child.stdout) throw new Error('no stdout')
  for await (const line of createInterface({ input: child.stdout })) return line
  throw new Error('the process printed nothing')
}

/** The pid of a process that has exited. */
async function deadPid() {
  const child = spawn(process.execPath, ['-e', ''])
  await exited(child)
  if (child.pid === undefined) throw new Error('no pid')
  return child.pid
}

/** The contents of the database and its WAL files, as text. */
async function databaseText(file: string) {
  const parts = await Promise.all(
    ['', '-wal', '-shm'].map((suffix) =>
      existsSync(file + suffix) ? readFile(file + suffix, 'latin1') : '',
    ),
  )
  return parts.join('')
}

describe('fileChannelStore', () => {
  test('defaults to $TEMPO_HOME/wallet/channels.db, the file mppx reads', async () => {
    vi.stubEnv('TEMPO_HOME', dir)
    const store = fileChannelStore()
    const expected = join(dir, 'wallet', 'channels.db')
    expect(store.path).toBe(expected)
    await store.forOrigin(origin).set(entry)
    await store.close()

    const mppx = createSqliteChannelStore({ path: expected, namespace: origin })
    expect(mppx.get(key)).toEqual(entry)
    mppx.close()
  })

  test('without TEMPO_HOME: ~/.tempo/wallet/channels.db (nothing is opened until used)', () => {
    vi.stubEnv('TEMPO_HOME', '')
    expect(fileChannelStore().path).toBe(join(homedir(), '.tempo', 'wallet', 'channels.db'))
  })

  test("shares mppx's createSqliteChannelStore table, per origin, both ways", async () => {
    const mppx = createSqliteChannelStore({ path, namespace: origin })
    const store = fileChannelStore(path)
    mppx.set(entry)
    expect(await store.forOrigin(origin).get(key)).toEqual(entry)

    await store.forOrigin(origin).set({ ...other, cumulativeAmount: 5n })
    expect(mppx.get(entryKey(other))).toEqual({ ...other, cumulativeAmount: 5n })

    // Another origin and the store without one are other namespaces.
    expect(await store.forOrigin('https://another.example').get(key)).toBeUndefined()
    expect(await store.get(key)).toBeUndefined()

    await store.forOrigin(origin).delete(key)
    expect(mppx.get(key)).toBeUndefined()
    mppx.close()
    await store.close()
  })

  test('no URL secret (userinfo, path, query) reaches the file, only the origin', async () => {
    const store = fileChannelStore(path)
    await store.forOrigin(secretUrl).set(entry)
    await store.lease(`${secretUrl} ${key}`, async () => {
      const names = (await readdir(dir)).join('\n')
      for (const secret of ['user', 'KEY-123', 'SECRET-456']) expect(names).not.toContain(secret)
    })
    await store.close()

    const text = await databaseText(path)
    expect(text).toContain(origin)
    for (const secret of ['user:', 'pw@', '/v1', 'KEY-123', 'apikey', 'SECRET-456'])
      expect(text).not.toContain(secret)
    const database = new DatabaseSync(path)
    expect(database.prepare('SELECT origin, request_url FROM channels').all()).toEqual([
      { origin, request_url: origin },
    ])
    database.close()
  })

  test('a file that is not a database: a ChannelStoreError naming it, and the file unchanged', async () => {
    const garbage = Buffer.from('not a database, but the only copy of something '.repeat(100))
    await writeFile(path, garbage)
    const store = fileChannelStore(path)

    const error = await Promise.resolve(store.forOrigin(origin).get(key)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ChannelStoreError)
    expect(error).toMatchObject({ reason: 'corrupt', path })
    expect((error as Error).message).toContain(`File: ${path}`)
    await expect(store.forOrigin(origin).set(entry)).rejects.toMatchObject({ reason: 'corrupt' })

    expect(await readFile(path)).toEqual(garbage)
    expect(existsSync(`${path}-wal`)).toBe(false)
  })

  test('a file that cannot be opened: a ChannelStoreError naming it', async () => {
    await expect(fileChannelStore(dir).forOrigin(origin).get(key)).rejects.toMatchObject({
      name: 'ChannelStoreError',
      reason: 'unavailable',
      path: dir,
    })
  })

  test('a damaged entry: a ChannelStoreError, and the row kept', async () => {
    const store = fileChannelStore(path)
    await store.forOrigin(origin).set(entry)
    await store.close()
    const database = new DatabaseSync(path)
    database.exec(`UPDATE channels SET entry_json = '{"channelId":'`)

    await expect(store.forOrigin(origin).get(key)).rejects.toMatchObject({
      name: 'ChannelStoreError',
      reason: 'corrupt',
      path,
    })
    expect(database.prepare('SELECT entry_json FROM channels').all()).toEqual([
      { entry_json: '{"channelId":' },
    ])
    database.close()
    await store.close()
  })

  test('a process killed in the middle of writes loses no committed entry', async () => {
    const writer = run(
      `
      import { fileChannelStore } from './src/node/fileChannelStore.ts'
      const entry = JSON.parse(process.argv[2])
      const store = fileChannelStore(process.argv[1]).forOrigin('${origin}')
      for (let amount = 1n; ; amount++) {
        await store.set({ ...entry, cumulativeAmount: amount, deposit: BigInt(entry.deposit) })
        console.log(String(amount))
      }
      `,
      [path, JSON.stringify({ ...entry, cumulativeAmount: '0', deposit: String(entry.deposit) })],
    )
    if (!writer.stdout) throw new Error('no stdout')
    let committed = 0n
    for await (const line of createInterface({ input: writer.stdout })) {
      committed = BigInt(line)
      if (committed === 50n) break
    }
    writer.kill('SIGKILL')
    await exited(writer)

    const read = await fileChannelStore(path).forOrigin(origin).get(key)
    expect(read?.channelId).toBe(entry.channelId)
    // Killed after its 50th commit: that one, and perhaps a few more, are there.
    expect(read?.cumulativeAmount).toBeGreaterThanOrEqual(50n)
  })
})

describe('fileChannelStore lease', () => {
  test('two processes contending for one scope run strictly one at a time', async () => {
    const counter = join(dir, 'counter')
    await writeFile(counter, '0')
    const rounds = 25
    const worker = () =>
      run(
        `
        import { readFile, writeFile } from 'node:fs/promises'
        import { fileChannelStore } from './src/node/fileChannelStore.ts'
        const [path, counter, rounds] = process.argv.slice(1)
        const store = fileChannelStore(path)
        const spans = []
        console.log('ready')
        for await (const _ of process.stdin) break
        for (let round = 0; round < Number(rounds); round++)
          await store.lease('one scope', async () => {
            const start = process.hrtime.bigint()
            // A read-modify-write, which loses updates unless the lease excludes the other.
            const count = Number(await readFile(counter, 'utf8'))
            await writeFile(counter, String(count + 1))
            spans.push([String(start), String(process.hrtime.bigint())])
          })
        console.log(JSON.stringify(spans))
        process.exit(0)
        `,
        [path, counter, String(rounds)],
      )
    const workers = [worker(), worker()]
    const lines = workers.map((child) => {
      if (!child.stdout) throw new Error('no stdout')
      return createInterface({ input: child.stdout })[Symbol.asyncIterator]()
    })
    for (const line of lines) expect((await line.next()).value).toBe('ready')
    // Both are ready: let them go at the same moment.
    for (const child of workers) child.stdin?.write('go\n')

    const spans = (
      await Promise.all(lines.map(async (line) => JSON.parse((await line.next()).value)))
    ).flatMap((spans: [string, string][], process) =>
      spans.map(([start, end]) => ({ process, start: BigInt(start), end: BigInt(end) })),
    )
    expect(await Promise.all(workers.map(exited))).toEqual([0, 0])

    expect(spans.length).toBe(2 * rounds)
    expect(Number(await readFile(counter, 'utf8'))).toBe(2 * rounds)
    // process.hrtime is the system's monotonic clock, the same for both processes.
    spans.sort((a, b) => (a.start < b.start ? -1 : 1))
    for (let i = 1; i < spans.length; i++)
      expect(spans[i]?.start).toBeGreaterThan(spans[i - 1]?.end ?? 0n)
    // Both took turns, and no lock file is left.
    expect(new Set(spans.map(({ process }) => process)).size).toBe(2)
    expect((await readdir(dir)).filter((name) => name.endsWith('.lock'))).toEqual([])
  })

  /** The lock file of `scope`, as the store names it, seen while a lease on it is held. */
  async function lockFileOf(store: ReturnType<typeof fileChannelStore>, scope: string) {
    return store.lease(scope, async () => {
      const locks = (await readdir(dir)).filter((name) => name.endsWith('.lock'))
      expect(locks).toHaveLength(1)
      return join(dir, locks[0] as string)
    })
  }

  test('a lock whose process is dead is taken over', async () => {
    const store = fileChannelStore(path)
    const lock = await lockFileOf(store, 'scope')
    const stale = {
      pid: await deadPid(),
      host: hostname(),
      id: 'dead',
      expiresAt: Date.now() + 3_600_000,
    }
    await writeFile(lock, JSON.stringify(stale))

    const held = await store.lease('scope', async () => JSON.parse(await readFile(lock, 'utf8')))
    expect(held).toMatchObject({ pid: process.pid, host: hostname() })
    expect(existsSync(lock)).toBe(false)
  })

  test('an expired lock is taken over, even if its process lives', async () => {
    const store = fileChannelStore(path)
    const lock = await lockFileOf(store, 'scope')
    const expired = { pid: process.ppid, host: hostname(), id: 'old', expiresAt: Date.now() - 1 }
    await writeFile(lock, JSON.stringify(expired))

    expect(await store.lease('scope', async () => 'ran')).toBe('ran')
    expect(existsSync(lock)).toBe(false)
  })

  test('a live lock is waited for; the signal ends the wait and leaves the lock alone', async () => {
    const store = fileChannelStore(path)
    const lock = await lockFileOf(store, 'scope')
    const live = JSON.stringify({
      pid: process.ppid,
      host: hostname(),
      id: 'live',
      expiresAt: Date.now() + 3_600_000,
    })
    await writeFile(lock, live)

    const controller = new AbortController()
    const fn = vi.fn(async () => 'ran')
    const waiting = store.lease('scope', fn, { signal: controller.signal })
    const reason = new Error('caller gave up')
    controller.abort(reason)
    await expect(waiting).rejects.toBe(reason)
    expect(fn).not.toHaveBeenCalled()
    expect(await readFile(lock, 'utf8')).toBe(live)
  })

  test('another scope is not held up, and a waiter runs once the holder is done', async () => {
    const [first, second] = [fileChannelStore(path), fileChannelStore(path)]
    const order: string[] = []
    let release = () => {}
    const holding = new Promise<void>((resolve) => {
      release = resolve
    })
    let entered = () => {}
    const inside = new Promise<void>((resolve) => {
      entered = resolve
    })

    const holder = first.lease('scope', async () => {
      order.push('first in')
      entered()
      await holding
      order.push('first out')
    })
    await inside
    expect(await second.lease('another scope', async () => 'free')).toBe('free')
    const waiter = second.lease('scope', async () => {
      order.push('second in')
    })
    release()
    await Promise.all([holder, waiter])
    expect(order).toEqual(['first in', 'first out', 'second in'])
  })

  test('a holder running past the ttl keeps its lease: it is renewed', async () => {
    const lock = join(dir, 'renewed.lock')
    const holder = await withLockFile(
      lock,
      async () => {
        const first = JSON.parse(await readFile(lock, 'utf8'))
        // Each renewal rewrites the file: wait on its changes until the first expiry is past.
        for await (const _ of watch(lock)) {
          // Caught between the renewal's truncate and its write, the file does not parse yet.
          const current = await readFile(lock, 'utf8').then(parsed, () => undefined)
          if (current && Date.now() > first.expiresAt) return { first, current }
        }
        throw new Error('the watch ended')
      },
      { ttl: 600 },
    )
    expect(holder.current).toMatchObject({ pid: process.pid, id: holder.first.id })
    expect(holder.current.expiresAt).toBeGreaterThan(Date.now())
    expect(existsSync(lock)).toBe(false)
  })

  test('the lease is released when fn throws', async () => {
    const store = fileChannelStore(path)
    const failure = new Error('fn failed')
    await expect(
      store.lease('scope', async () => {
        throw failure
      }),
    ).rejects.toBe(failure)
    expect(await store.lease('scope', async () => 'again')).toBe('again')
    expect((await readdir(dir)).filter((name) => name.endsWith('.lock'))).toEqual([])
  })
})

/** A Node on PATH without node:sqlite (the machine's own Node 20), not this package's Node 24. */
function oldNode() {
  const candidates = execFileSync('which', ['-a', 'node'], { encoding: 'utf8' })
    .split('\n')
    .filter((candidate) => candidate && !candidate.includes('node_modules'))
  for (const node of candidates) {
    const [major = 0, minor = 0] = execFileSync(node, ['-p', 'process.versions.node'], {
      encoding: 'utf8',
    })
      .trim()
      .split('.')
      .map(Number)
    if (major < 22 || (major === 22 && minor < 5)) return node
  }
  throw new Error(`No Node older than 22.5 on PATH (${candidates.join(', ')}) to check against`)
}

test('on Node 20, viem-mpp and viem-mpp/node work, and fileChannelStore says which Node it needs', async () => {
  const node = oldNode()
  const child = run(
    `
    import { memoryChannelStore, mppHttp } from './src/index.ts'
    import { fileChannelStore, keysTomlPath, parseKeysToml } from './src/node/index.ts'
    const store = fileChannelStore(process.argv[1])
    const error = await store.forOrigin('${origin}').get('key').catch((error) => error)
    console.log(JSON.stringify({
      node: process.versions.node,
      mppHttp: typeof mppHttp('https://rpc.example'),
      memory: typeof memoryChannelStore().get,
      keysTomlPath: keysTomlPath({ TEMPO_HOME: '/home/t' }),
      keys: parseKeysToml('').length,
      error: { name: error.name, reason: error.reason, shortMessage: error.shortMessage },
    }))
    `,
    [path],
    node,
  )
  const result = JSON.parse(await firstLine(child))
  expect(await exited(child)).toBe(0)
  expect(result).toEqual({
    node: expect.stringMatching(/^(1\d|2[01])\.|^22\.[0-4]\./),
    mppHttp: 'function',
    memory: 'function',
    keysTomlPath: '/home/t/wallet/keys.toml',
    keys: 0,
    error: {
      name: 'ChannelStoreError',
      reason: 'unsupportedRuntime',
      shortMessage:
        'fileChannelStore needs node:sqlite: Node >= 22.13, or Node 22.5 to 22.12 with --experimental-sqlite.',
    },
  })
  expect(existsSync(path)).toBe(false)
})

/** `text` as JSON, or `undefined` if it is not (yet) whole. */
function parsed(text: string): { expiresAt: number } | undefined {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
