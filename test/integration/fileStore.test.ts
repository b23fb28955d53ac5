import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
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
import type { ChannelRecord, LedgerTally } from '../../src/stores/ChannelStore.js'
import { entry, key } from '../support/poolContract.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

type Row = Record<string, unknown>
type Sql = {
  exec(sql: string): void
  prepare(sql: string): {
    all(...values: unknown[]): Row[]
    run(...values: unknown[]): { changes: number | bigint }
  }
  close(): void
}
/** `node:sqlite`, which @types/node 20 (the package's Node floor) does not declare. */
const { DatabaseSync } = createRequire(import.meta.url)('node:sqlite') as {
  DatabaseSync: new (path: string) => Sql
}

/** A second scope (another payee), so another key. */
const other: ChannelEntry = {
  ...entry,
  channelId: `0x${'c2'.repeat(32)}`,
  descriptor: { ...entry.descriptor, payee: '0xBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBb' },
}
/** A second channel of the first scope. */
const second: ChannelEntry = { ...entry, channelId: `0x${'c3'.repeat(32)}`, cumulativeAmount: 7n }
/** The entry's amount, which the ledger tests count from (beyond 2^64: stored exactly). */
const base = entry.cumulativeAmount

const origin = 'https://rpc.example:8443'
const secretUrl = 'https://user:pw@rpc.example:8443/v1/KEY-123?apikey=SECRET-456'

let dir: string
let path: string
const children = new Set<ChildProcess>()
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'viem-mpp-filestore-'))
  path = join(dir, 'channels.db')
})
afterEach(async () => {
  vi.unstubAllEnvs()
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill()
  children.clear()
  await rm(dir, { recursive: true, force: true })
})

/** Runs `code` (an ES module, TypeScript imports allowed) in a new Node process of `node`. */
function run(
  code: string,
  args: string[] = [],
  node = process.execPath,
  user: { uid?: number; gid?: number } = {},
) {
  const child = spawn(node, ['--import', 'tsx', '--input-type=module', '-e', code, '--', ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
    ...user,
  })
  children.add(child)
  return child
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

/** The contents of the database and its WAL files, as text. */
async function databaseText(file: string) {
  const parts = await Promise.all(
    ['', '-wal', '-shm'].map((suffix) =>
      existsSync(file + suffix) ? readFile(file + suffix, 'latin1') : '',
    ),
  )
  return parts.join('')
}

/** Runs `sql` on the file through a connection of its own, as another tool would. */
function query(sql: string, ...values: unknown[]): Row[] {
  const database = new DatabaseSync(path)
  try {
    database.exec('PRAGMA busy_timeout = 5000')
    return database.prepare(sql).all(...values)
  } finally {
    database.close()
  }
}
const ledgerOf = (channelId: string) =>
  query('SELECT * FROM viem_mpp_ledger WHERE channel_id = ?', channelId)[0]
const rowOf = (channelId: string) =>
  query(
    `SELECT scope_key, origin, request_url, state, cumulative_amount, deposit, entry_json
    FROM channels WHERE channel_id = ?`,
    channelId,
  )[0]
/** What mppx's own store reads for the scope `key` of `namespace`. */
function mppxGet(namespace: string, scope = key) {
  const mppx = createSqliteChannelStore({ path, namespace })
  try {
    // mppx's SQLite store is synchronous; its type is the interface's.
    return mppx.get(scope) as ChannelEntry | undefined
  } finally {
    mppx.close()
  }
}

/** The ledger columns of a lease held by `pid` on this host. */
const heldBy = (pid: number) => ({
  lease_id: expect.any(String),
  lease_pid: pid,
  lease_host: hostname(),
  lease_started: expect.stringMatching(/^[0-9a-f-]+:\d+:\d+$/),
  lease_expires: expect.any(Number),
})
const unheld = {
  lease_id: null,
  lease_pid: null,
  lease_host: null,
  lease_started: null,
  lease_expires: null,
}

/** The whole ledger row of `channelId`: its amounts as stored (text) and `lease` (none by default). */
const ledgerRow = (
  channelId: string,
  { mark, signed, spent }: { mark: bigint; signed: bigint; spent: bigint },
  lease: Row = unheld,
) => ({
  channel_id: channelId,
  mark: String(mark),
  signed: String(signed),
  spent: String(spent),
  ...lease,
  opening_until: null,
})

/** What a `ChannelStoreError` of `reason` about the file at `file` matches. */
const storeError = (reason: ChannelStoreError['reason'], file: string) => ({
  name: 'ChannelStoreError',
  reason,
  path: file,
})

/** Claim options at `at`, with the tally the test sets as it goes. */
function tallied(at = secretUrl) {
  const tally: LedgerTally = { signed: 0n, spent: 0n }
  return { tally, options: { origin: at, tally: () => ({ ...tally }) } }
}

/**
 * A child process with a store on the test's file: `store`, `entry`, `key`, `tally` and `options`
 * (at `secretUrl`) defined, `say(value)` prints a JSON line, `next()` reads a line of stdin.
 */
function holder(code: string, user: { uid?: number; gid?: number } = {}, file = path) {
  const child = run(
    `
    import { createInterface } from 'node:readline'
    import { entryKey } from 'mppx/client'
    import { fileChannelStore } from './src/node/fileChannelStore.js'
    const store = fileChannelStore(process.argv[1])
    const stored = JSON.parse(process.argv[2])
    const entry = { ...stored, cumulativeAmount: BigInt(stored.cumulativeAmount), deposit: BigInt(stored.deposit) }
    const key = entryKey(entry)
    const tally = { signed: 0n, spent: 0n }
    const options = { origin: '${secretUrl}', tally: () => ({ ...tally }) }
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
    const next = async () => (await lines.next()).value
    const say = (value) =>
      console.log(JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? String(v) : v)))
    ${code}
    `,
    [
      file,
      JSON.stringify({
        ...entry,
        cumulativeAmount: String(entry.cumulativeAmount),
        deposit: String(entry.deposit),
      }),
    ],
    process.execPath,
    user,
  )
  if (!child.stdout) throw new Error('no stdout')
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  return {
    child,
    read: async () => JSON.parse((await lines.next()).value),
    send: (line: string) => child.stdin?.write(`${line}\n`),
  }
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
    await store.forOrigin(secretUrl).set(other)
    const lease = await store.pool.add(entry, { ...tallied().options, openingUntil: 0 })
    await lease.release()
    const names = (await readdir(dir)).join('\n')
    for (const secret of ['user', 'KEY-123', 'SECRET-456']) expect(names).not.toContain(secret)
    await store.close()

    const text = await databaseText(path)
    expect(text).toContain(origin)
    for (const secret of ['user:', 'pw@', '/v1', 'KEY-123', 'apikey', 'SECRET-456'])
      expect(text).not.toContain(secret)
    expect(query('SELECT origin, request_url FROM channels')).toEqual([
      { origin, request_url: origin },
      { origin, request_url: origin },
    ])
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
    await expect(store.pool.free(origin, key)).rejects.toMatchObject({ reason: 'corrupt', path })
    await expect(store.list()).rejects.toMatchObject({ reason: 'corrupt', path })

    expect(await readFile(path)).toEqual(garbage)
    expect(existsSync(`${path}-wal`)).toBe(false)
  })

  test('a file that cannot be opened: a ChannelStoreError naming it', async () => {
    await expect(fileChannelStore(dir).forOrigin(origin).get(key)).rejects.toMatchObject(
      storeError('unavailable', dir),
    )
    await expect(fileChannelStore(dir).pool.free(origin, key)).rejects.toMatchObject(
      storeError('unavailable', dir),
    )
  })

  test('a damaged entry: a ChannelStoreError, and the row kept', async () => {
    const store = fileChannelStore(path)
    await store.forOrigin(origin).set(entry)
    await store.close()
    const database = new DatabaseSync(path)
    database.exec(`UPDATE channels SET entry_json = '{"channelId":'`)

    await expect(store.forOrigin(origin).get(key)).rejects.toMatchObject(
      storeError('corrupt', path),
    )
    expect(database.prepare('SELECT entry_json FROM channels').all()).toEqual([
      { entry_json: '{"channelId":' },
    ])
    database.close()
    await store.close()
  })

  test('a process killed in the middle of writes loses no committed entry', async () => {
    const writer = run(
      `
      import { fileChannelStore } from './src/node/fileChannelStore.js'
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

    const store = fileChannelStore(path)
    const read = await store.forOrigin(origin).get(key)
    expect(read?.channelId).toBe(entry.channelId)
    // Killed after its 50th commit: that one, and perhaps a few more, are there.
    expect(read?.cumulativeAmount).toBeGreaterThanOrEqual(50n)
    await store.close()
  })
})

describe('fileChannelStore pool', () => {
  test("add: mppx's own row, `opening` until opened; the scope's next channel is pooled; removing the first promotes it", async () => {
    const store = fileChannelStore(path)
    const { options } = tallied()
    const before = Date.now()
    const first = await store.pool.add(
      { ...entry, opened: false },
      { ...options, openingUntil: 1_900_000_000 },
    )
    expect(mppxGet(origin)).toEqual({ ...entry, opened: false })
    expect(rowOf(entry.channelId)).toMatchObject({
      scope_key: `${origin}\n${key}`,
      origin,
      request_url: origin,
      state: 'opening',
      cumulative_amount: String(base),
    })
    const ledger = ledgerOf(entry.channelId)
    expect(ledger).toEqual({
      channel_id: entry.channelId,
      mark: String(base),
      signed: '0',
      spent: '0',
      ...heldBy(process.pid),
      opening_until: 1_900_000_000,
    })
    expect(ledger?.lease_expires).toBeGreaterThanOrEqual(before + 30_000)
    expect(ledger?.lease_expires).toBeLessThanOrEqual(Date.now() + 30_000)

    await first.update({ opened: true })
    expect(mppxGet(origin)).toEqual(entry)
    expect(rowOf(entry.channelId)?.state).toBe('active')
    expect(ledgerOf(entry.channelId)).toMatchObject({ mark: String(base), opening_until: null })

    const next = await store.pool.add(
      { ...second, opened: false },
      { ...options, openingUntil: 1_900_000_000 },
    )
    await next.update({ opened: true, deposit: 60_000_000n })
    expect(rowOf(second.channelId)).toMatchObject({
      scope_key: `${origin}\n${key}\n${second.channelId}`,
      state: 'active',
      deposit: '60000000',
      cumulative_amount: '7',
    })
    // mppx (and mpp-rs, Foundry) still read the first channel.
    expect(mppxGet(origin)).toEqual(entry)

    await first.remove()
    expect(query('SELECT channel_id, scope_key FROM channels')).toEqual([
      { channel_id: second.channelId, scope_key: `${origin}\n${key}` },
    ])
    expect(query('SELECT channel_id FROM viem_mpp_ledger')).toEqual([
      { channel_id: second.channelId },
    ])
    expect(mppxGet(origin)).toEqual({ ...second, deposit: 60_000_000n })
    expect(first.lost).toBe(false)
    await store.close()
    // Closing the store ended the lease still held, exactly.
    expect(ledgerOf(second.channelId)).toEqual(
      ledgerRow(second.channelId, { mark: 0n, signed: 0n, spent: 0n }),
    )
  })

  test("a channel set aside (opened: false) gives mppx's row to a usable one of its scope", async () => {
    const store = fileChannelStore(path)
    const { options } = tallied()
    const first = await store.pool.add(entry, { ...options, openingUntil: 1_900_000_000 })
    const next = await store.pool.add(second, { ...options, openingUntil: 1_900_000_000 })
    expect(mppxGet(origin)?.channelId).toBe(entry.channelId)
    // The server disowned the first (a 410 while it is funded): it is kept, unusable.
    await first.update({ opened: false })
    expect(mppxGet(origin)?.channelId).toBe(second.channelId)
    expect(
      query(
        'SELECT channel_id, scope_key, state FROM channels ORDER BY channel_id = ? DESC',
        entry.channelId,
      ),
    ).toEqual([
      {
        channel_id: entry.channelId,
        scope_key: `${origin}\n${key}\n${entry.channelId}`,
        state: 'gone',
      },
      { channel_id: second.channelId, scope_key: `${origin}\n${key}`, state: 'active' },
    ])
    // A usable canonical row stays where it is.
    await first.update({ opened: true })
    expect(mppxGet(origin)?.channelId).toBe(second.channelId)
    await Promise.all([first.release(), next.release()])
    await store.close()
  })

  test('raise writes the mark ahead, in the ledger and the entry; release writes the tally exactly; free returns it', async () => {
    const store = fileChannelStore(path)
    const { tally, options } = tallied()
    const lease = await store.pool.add(
      { ...entry, opened: false },
      { ...options, openingUntil: 1_900_000_000 },
    )
    expect(await store.pool.free(origin, key)).toEqual([])
    await lease.update({ opened: true })

    Object.assign(tally, { signed: base + 400n, spent: 300n })
    await lease.raise(base + 1000n)
    expect(ledgerOf(entry.channelId)).toMatchObject({
      mark: String(base + 1000n),
      signed: String(base + 400n),
      spent: '300',
      ...heldBy(process.pid),
    })
    const row = rowOf(entry.channelId)
    expect(row?.cumulative_amount).toBe(String(base + 1000n))
    expect(JSON.parse(String(row?.entry_json)).cumulativeAmount).toBe(String(base + 1000n))
    expect(mppxGet(origin)?.cumulativeAmount).toBe(base + 1000n)

    Object.assign(tally, { signed: base + 700n, spent: 650n })
    await lease.release()
    await lease.release()
    expect(lease.lost).toBe(false)
    expect(ledgerOf(entry.channelId)).toEqual(
      ledgerRow(entry.channelId, { mark: base + 700n, signed: base + 700n, spent: 650n }),
    )
    expect(rowOf(entry.channelId)?.cumulative_amount).toBe(String(base + 700n))
    expect(mppxGet(origin)?.cumulativeAmount).toBe(base + 700n)

    expect(await store.pool.free(secretUrl, key)).toEqual([
      {
        origin,
        key,
        entry: { ...entry, cumulativeAmount: base + 700n },
        ledger: {
          mark: base + 700n,
          signed: base + 700n,
          spent: 650n,
          lease: undefined,
          openingUntil: undefined,
        },
      },
    ])
    // A released lease writes nothing more.
    await expect(lease.raise(base + 2000n)).rejects.toMatchObject({ reason: 'leaseLost' })
    expect(ledgerOf(entry.channelId)?.mark).toBe(String(base + 700n))
    await store.close()
  })

  test('two processes claiming one free channel at the same moment: exactly one gets it', async () => {
    const store = fileChannelStore(path)
    await store.pool.put(entry, { origin })
    await store.close()
    const code = `
      const [record] = await store.pool.free('${origin}', key)
      tally.signed = record.entry.cumulativeAmount
      say('ready')
      await next()
      const lease = await store.pool.claim(record, options)
      const free = await store.pool.free('${origin}', key)
      say({ pid: process.pid, claimed: lease !== undefined, free: free.map((r) => r.entry.channelId) })
      await next()
      process.exit(0)
    `
    const contenders = [holder(code), holder(code)]
    for (const contender of contenders) expect(await contender.read()).toBe('ready')
    for (const contender of contenders) contender.send('go')
    const results = await Promise.all(contenders.map((contender) => contender.read()))

    expect(results.map(({ claimed }) => claimed).sort()).toEqual([false, true])
    const winner = results.find(({ claimed }) => claimed)
    const loser = results.find(({ claimed }) => !claimed)
    expect(loser.free).toEqual([])
    expect(winner.free).toEqual([])
    expect(ledgerOf(entry.channelId)).toMatchObject({ mark: String(base), ...heldBy(winner.pid) })

    for (const contender of contenders) contender.send('exit')
    expect(await Promise.all(contenders.map(({ child }) => exited(child)))).toEqual([0, 0])
    expect(ledgerOf(entry.channelId)).toMatchObject({
      mark: String(base),
      signed: String(base),
      ...unheld,
    })
  })

  test('a holder SIGKILLed: its channel is free at once, with the last mark written', async () => {
    const killed = holder(`
      const lease = await store.pool.add({ ...entry, opened: false }, { ...options, openingUntil: 1 })
      await lease.update({ opened: true })
      Object.assign(tally, { signed: ${base + 400n}n, spent: 300n })
      await lease.raise(${base + 1000n}n)
      say('raised')
      await next()
    `)
    expect(await killed.read()).toBe('raised')
    killed.child.kill('SIGKILL')
    await exited(killed.child)

    const store = fileChannelStore(path)
    const free = await store.pool.free(origin, key)
    expect(free).toEqual([
      {
        origin,
        key,
        entry: { ...entry, cumulativeAmount: base + 1000n },
        ledger: {
          mark: base + 1000n,
          signed: base + 400n,
          spent: 300n,
          lease: {
            id: expect.any(String),
            pid: killed.child.pid,
            host: hostname(),
            expiresAt: expect.any(Number),
            live: false,
          },
          openingUntil: undefined,
        },
      },
    ])
    // Free at once: its lease had not expired.
    expect(free[0]?.ledger?.lease?.expiresAt).toBeGreaterThan(Date.now())

    const lease = await store.pool.claim(free[0] as ChannelRecord, tallied().options)
    expect(lease?.record.ledger?.mark).toBe(base + 1000n)
    expect(ledgerOf(entry.channelId)).toEqual(
      ledgerRow(
        entry.channelId,
        { mark: base + 1000n, signed: base + 400n, spent: 300n },
        heldBy(process.pid),
      ),
    )
    await store.close()
  })

  test("another host's lease is taken over once expired, not before; a reused pid's at once", async () => {
    const store = fileChannelStore(path)
    await store.pool.put(entry, { origin })
    await store.pool.put(second, { origin })
    // This process's lease identity, to forge one of a process that reused a pid.
    const third: ChannelEntry = { ...second, channelId: `0x${'c4'.repeat(32)}` }
    await (await store.pool.add(third, { ...tallied().options, openingUntil: 0 })).update({})
    const identity = String(ledgerOf(third.channelId)?.lease_started)
    const reused = `${identity.slice(0, identity.lastIndexOf(':'))}:1`
    const database = new DatabaseSync(path)
    const lease = database.prepare(`INSERT OR REPLACE INTO viem_mpp_ledger (channel_id, mark,
      signed, spent, lease_id, lease_pid, lease_host, lease_started, lease_expires)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    const expired = Date.now() - 1_000
    lease.run(entry.channelId, String(base), '5', '4', 'old', 4242, 'elsewhere', null, expired)
    lease.run(second.channelId, '7', '6', '5', 'current', 4242, 'elsewhere', null, Date.now() + 6e5)
    lease.run(
      third.channelId,
      '7',
      '0',
      '0',
      'reused',
      process.pid,
      hostname(),
      reused,
      Date.now() + 6e5,
    )
    database.close()

    const free = await store.pool.free(origin, key)
    expect(free.map(({ entry, ledger }) => [entry.channelId, ledger?.lease])).toEqual([
      [
        entry.channelId,
        { id: 'old', pid: 4242, host: 'elsewhere', expiresAt: expired, live: false },
      ],
      [third.channelId, expect.objectContaining({ id: 'reused', pid: process.pid, live: false })],
    ])
    const records = await store.list()
    const current = records.find((record) => record.entry.channelId === second.channelId)
    expect(current?.ledger?.lease).toMatchObject({ id: 'current', host: 'elsewhere', live: true })
    expect(await store.pool.claim(current as ChannelRecord, tallied().options)).toBeUndefined()
    expect(ledgerOf(second.channelId)).toMatchObject({ lease_id: 'current', signed: '6' })

    expect(await store.pool.claim(free[0] as ChannelRecord, tallied().options)).toBeDefined()
    expect(ledgerOf(entry.channelId)).toMatchObject({
      mark: String(base),
      signed: '5',
      spent: '4',
      ...heldBy(process.pid),
    })
    await store.close()
  })

  test('a live holder on this host whose lease_expires passed (a clock jump) is not taken over', async () => {
    const store = fileChannelStore(path)
    await store.pool.put(entry, { origin })
    const live = holder(`
      const [record] = await store.pool.free('${origin}', key)
      say((await store.pool.claim(record, options)) !== undefined)
      await next()
    `)
    expect(await live.read()).toBe(true)
    query('UPDATE viem_mpp_ledger SET lease_expires = ?', Date.now() - 60_000)

    expect(await store.pool.free(origin, key)).toEqual([])
    const [record] = await store.list()
    expect(record?.ledger?.lease).toMatchObject({ pid: live.child.pid, live: true })
    expect(await store.pool.claim(record as ChannelRecord, tallied().options)).toBeUndefined()
    expect(ledgerOf(entry.channelId)).toMatchObject({ lease_pid: live.child.pid })
    await store.close()
  })

  test('process exit writes the exact ledger of a lease still held and ends it', async () => {
    const exiting = holder(`
      const lease = await store.pool.add({ ...entry, opened: false }, { ...options, openingUntil: 1 })
      await lease.update({ opened: true })
      Object.assign(tally, { signed: ${base + 400n}n, spent: 350n })
      await lease.raise(${base + 1000n}n)
      Object.assign(tally, { signed: ${base + 700n}n, spent: 650n })
      say('raised')
      await next()
      process.exit(0)
    `)
    expect(await exiting.read()).toBe('raised')
    expect(ledgerOf(entry.channelId)).toMatchObject({
      mark: String(base + 1000n),
      signed: String(base + 400n),
      ...heldBy(exiting.child.pid as number),
    })
    exiting.send('exit')
    expect(await exited(exiting.child)).toBe(0)

    expect(ledgerOf(entry.channelId)).toEqual(
      ledgerRow(entry.channelId, { mark: base + 700n, signed: base + 700n, spent: 650n }),
    )
    expect(rowOf(entry.channelId)).toMatchObject({
      state: 'active',
      cumulative_amount: String(base + 700n),
    })
    expect(mppxGet(origin)).toEqual({ ...entry, cumulativeAmount: base + 700n })
  })

  test("claim moves a channel of the store's own entries to the origin it is used at", async () => {
    const store = fileChannelStore(path)
    expect(await store.pool.put(entry, { origin: undefined })).toBe(true)
    expect(await store.pool.put(second, { origin: undefined })).toBe(true)
    expect(rowOf(second.channelId)?.scope_key).toBe(`\n${key}\n${second.channelId}`)

    const free = await store.pool.free(secretUrl, key)
    expect(free.map(({ origin, entry }) => [origin, entry.channelId])).toEqual([
      [undefined, entry.channelId],
      [undefined, second.channelId],
    ])
    const lease = await store.pool.claim(free[0] as ChannelRecord, tallied().options)
    expect(lease).toBeDefined()
    expect(rowOf(entry.channelId)).toMatchObject({
      scope_key: `${origin}\n${key}`,
      origin,
      request_url: origin,
    })
    expect(mppxGet(origin)).toEqual(entry)
    // The store's next channel of the scope takes the first one's place there.
    expect(rowOf(second.channelId)?.scope_key).toBe(`\n${key}`)
    expect(mppxGet('')).toEqual(second)
    await store.close()
  })

  test('claim leaves alone a channel that another origin took since it was listed', async () => {
    const store = fileChannelStore(path)
    await store.pool.put(entry, { origin: undefined })
    const [record] = await store.pool.free(origin, key)
    const elsewhere = 'https://elsewhere.example'
    await (await store.pool.claim(record as ChannelRecord, tallied(elsewhere).options))?.release()
    expect(rowOf(entry.channelId)?.scope_key).toBe(`${elsewhere}\n${key}`)

    expect(await store.pool.claim(record as ChannelRecord, tallied().options)).toBeUndefined()
    expect(rowOf(entry.channelId)?.scope_key).toBe(`${elsewhere}\n${key}`)
    expect(ledgerOf(entry.channelId)).toMatchObject(unheld)
    await store.close()
  })

  test('put never replaces a stored channel: false for a known one, pooled beside the others', async () => {
    const store = fileChannelStore(path)
    expect(await store.pool.put(entry, { origin: secretUrl })).toBe(true)
    const stored = rowOf(entry.channelId)
    expect(await store.pool.put({ ...entry, cumulativeAmount: 1n }, { origin })).toBe(false)
    expect(await store.pool.put(entry, { origin: undefined })).toBe(false)
    expect(await store.pool.put(entry, { origin: 'https://another.example' })).toBe(false)
    expect(rowOf(entry.channelId)).toEqual(stored)

    expect(await store.pool.put(second, { origin })).toBe(true)
    expect(rowOf(second.channelId)?.scope_key).toBe(`${origin}\n${key}\n${second.channelId}`)
    expect(mppxGet(origin)).toEqual(entry)
    expect(query('SELECT count(*) AS n FROM viem_mpp_ledger')).toEqual([{ n: 0 }])
    await store.close()
  })

  test('a lost lease: `lost`, and raise throws leaseLost, writing nothing', async () => {
    const store = fileChannelStore(path)
    const { tally, options } = tallied()
    const lease = await store.pool.add(entry, { ...options, openingUntil: 0 })
    query(`UPDATE viem_mpp_ledger SET lease_id = 'intruder'`)
    const ledger = ledgerOf(entry.channelId)
    const row = rowOf(entry.channelId)

    expect(lease.lost).toBe(true)
    tally.signed = base + 5n
    const error = await lease.raise(base + 10n).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ChannelStoreError)
    expect(error).toMatchObject({ reason: 'leaseLost', channelId: entry.channelId, path })
    await expect(lease.update({ deposit: 1n })).rejects.toMatchObject({ reason: 'leaseLost' })
    await lease.release()
    await lease.remove()
    expect(lease.lost).toBe(true)
    expect(ledgerOf(entry.channelId)).toEqual(ledger)
    expect(rowOf(entry.channelId)).toEqual(row)
    await store.close()
    expect(ledgerOf(entry.channelId)).toEqual(ledger)
  })

  test('another tool writing a leased row (mppx set): raise refuses, release never lowers it', async () => {
    const store = fileChannelStore(path)
    const { tally, options } = tallied()
    const lease = await store.pool.add(entry, { ...options, openingUntil: 0 })
    await lease.update({ opened: true })
    tally.signed = base + 5n
    await lease.raise(base + 10n)
    const ledger = ledgerOf(entry.channelId)
    // mppx, knowing no lease, signs on the channel and records it.
    const mppx = createSqliteChannelStore({ path, namespace: origin })
    mppx.set({ ...entry, cumulativeAmount: base + 50n })
    mppx.close()

    expect(lease.lost).toBe(true)
    await expect(lease.raise(base + 20n)).rejects.toMatchObject({
      reason: 'leaseLost',
      channelId: entry.channelId,
    })
    expect(ledgerOf(entry.channelId)).toEqual(ledger)
    expect(rowOf(entry.channelId)?.cumulative_amount).toBe(String(base + 50n))

    await lease.release()
    expect(ledgerOf(entry.channelId)).toMatchObject({
      mark: String(base + 5n),
      signed: String(base + 5n),
      ...unheld,
    })
    expect(mppxGet(origin)?.cumulativeAmount).toBe(base + 50n)
    // The ledger is not believed: what mppx signed is above it.
    const [free] = await store.pool.free(origin, key)
    expect(free?.entry.cumulativeAmount).toBe(base + 50n)
    expect(free?.ledger).toBeUndefined()
    await store.close()
  })

  test('remove removes the channel even after another tool rewrote its row', async () => {
    const store = fileChannelStore(path)
    const lease = await store.pool.add(entry, { ...tallied().options, openingUntil: 0 })
    const mppx = createSqliteChannelStore({ path, namespace: origin })
    mppx.set({ ...entry, cumulativeAmount: base + 50n })
    mppx.close()
    await lease.remove()
    expect(query('SELECT channel_id FROM channels')).toEqual([])
    expect(query('SELECT channel_id FROM viem_mpp_ledger')).toEqual([])
    await store.close()
  })

  test('a holder renews its lease every 10 s, for 30 s from each renewal', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
    try {
      const store = fileChannelStore(path)
      const lease = await store.pool.add(entry, { ...tallied().options, openingUntil: 0 })
      expect(ledgerOf(entry.channelId)?.lease_expires).toBe(Date.now() + 30_000)
      vi.advanceTimersByTime(9_999)
      const first = Date.now() + 1 + 30_000 - 10_000
      expect(ledgerOf(entry.channelId)?.lease_expires).toBe(first)
      vi.advanceTimersByTime(1)
      expect(ledgerOf(entry.channelId)?.lease_expires).toBe(Date.now() + 30_000)
      vi.advanceTimersByTime(60_000)
      expect(ledgerOf(entry.channelId)?.lease_expires).toBe(Date.now() + 30_000)
      expect(lease.lost).toBe(false)
      await lease.release()
      vi.advanceTimersByTime(10_000)
      expect(ledgerOf(entry.channelId)).toMatchObject(unheld)
      await store.close()
    } finally {
      vi.useRealTimers()
    }
  })

  test("a corrupt row in the scope: free throws corrupt naming it, and the file's bytes stay", async () => {
    const store = fileChannelStore(path)
    await store.pool.put(entry, { origin })
    await store.pool.put(second, { origin })
    await store.close()
    query(`UPDATE channels SET entry_json = '{"channelId":' WHERE channel_id = ?`, second.channelId)
    const bytes = await readFile(path)

    const reopened = fileChannelStore(path)
    const error = await reopened.pool.free(origin, key).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ChannelStoreError)
    expect(error).toMatchObject({ reason: 'corrupt', path, channelId: second.channelId })
    await expect(reopened.list()).rejects.toMatchObject({ channelId: second.channelId })
    await reopened.close()
    expect(await readFile(path)).toEqual(bytes)
  })

  test('a read-only folder or file: a ChannelStoreError before anything is written', async () => {
    // Root writes whatever the mode bits say: the store runs as `nobody` where the tests run as root.
    const user = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
    await chmod(dir, 0o755)
    const attempt = `
      const error = await store.pool.add(entry, { ...options, openingUntil: 0 }).catch((e) => e)
      const free = await store.pool.free('${origin}', key).catch((e) => e)
      say([error, free].map((e) => ({ name: e.name, reason: e.reason, path: e.path })))
      process.exit(0)
    `
    const folder = join(dir, 'read-only')
    await mkdir(folder, { mode: 0o555 })
    const inFolder = holder(attempt, user, join(folder, 'channels.db'))
    const inFolderFile = join(folder, 'channels.db')
    expect(await inFolder.read()).toEqual([
      storeError('readOnly', inFolderFile),
      storeError('readOnly', inFolderFile),
    ])
    expect(await readdir(folder)).toEqual([])

    const store = fileChannelStore(path)
    await store.pool.put(second, { origin })
    await store.close()
    await chmod(path, 0o444)
    const bytes = await readFile(path)
    const inFile = holder(attempt, user)
    // Even reading needs a write (mppx's schema upgrade, the WAL index): both are refused.
    expect(await inFile.read()).toEqual([
      storeError('readOnly', path),
      storeError('readOnly', path),
    ])
    expect(await readFile(path)).toEqual(bytes)

    // A folder that is a file: nothing can be made there, not even by root.
    const underFile = join(path, 'channels.db')
    await expect(fileChannelStore(underFile).pool.free(origin, key)).rejects.toMatchObject(
      storeError('unavailable', underFile),
    )
  })

  test('list shows every channel, pooled ones too, with ledger and lease', async () => {
    const store = fileChannelStore(path)
    const { options } = tallied()
    const first = await store.pool.add(entry, { ...options, openingUntil: 0 })
    await first.update({ opened: true })
    await (
      await store.pool.add(
        { ...second, opened: false },
        { ...options, openingUntil: 1_900_000_000 },
      )
    ).release()
    await store.pool.put(other, { origin: undefined })

    const lease = {
      id: expect.any(String),
      pid: process.pid,
      host: hostname(),
      expiresAt: expect.any(Number),
      live: true,
    }
    expect(await store.list()).toEqual([
      {
        origin,
        key,
        entry,
        ledger: { mark: base, signed: 0n, spent: 0n, lease, openingUntil: undefined },
      },
      {
        origin,
        key,
        entry: { ...second, cumulativeAmount: 0n, opened: false },
        ledger: { mark: 0n, signed: 0n, spent: 0n, lease: undefined, openingUntil: 1_900_000_000 },
      },
      { origin: undefined, key: entryKey(other), entry: other, ledger: undefined },
    ])
    await store.close()
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
    import { memoryChannelStore, mppHttp } from './src/index.js'
    import { fileChannelStore, keysTomlPath, parseKeysToml } from './src/node/index.js'
    const store = fileChannelStore(process.argv[1])
    const error = await store.forOrigin('${origin}').get('key').catch((error) => error)
    const poolError = await store.pool.free('${origin}', 'key').catch((error) => error)
    console.log(JSON.stringify({
      node: process.versions.node,
      mppHttp: typeof mppHttp('https://rpc.example'),
      memory: typeof memoryChannelStore().get,
      keysTomlPath: keysTomlPath({ TEMPO_HOME: '/home/t' }),
      keys: parseKeysToml('').length,
      error: { name: error.name, reason: error.reason, shortMessage: error.shortMessage },
      poolError: poolError.reason,
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
    poolError: 'unsupportedRuntime',
  })
  expect(existsSync(path)).toBe(false)
})
