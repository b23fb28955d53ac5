import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { type Address, createPublicClient, http, parseEventLogs } from 'viem'
import { Abis, Addresses } from 'viem/tempo'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { useLocalnet } from '../support/localnet.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const localnet = useLocalnet()

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'viem-mpp-session-'))
})
afterEach(() => rm(dir, { recursive: true, force: true }))

/**
 * A payer process: a session on `fileChannelStore(path)` that prints `ready`, waits for a line on
 * stdin, makes `calls` paid calls and prints how many succeeded.
 */
const payer = `
  const [path, url, rpcUrl, chainId, privateKey, calls] = process.argv.slice(1)
  const { createClient, createPublicClient, http } = await import('viem')
  const { privateKeyToAccount } = await import('viem/accounts')
  const { defineLocalnetChain } = await import('./src/testing/index.ts')
  const { mppHttp, session } = await import('./src/index.ts')
  const { fileChannelStore } = await import('./src/node/index.ts')
  const chain = defineLocalnetChain({ id: Number(chainId), rpcUrl })
  const store = fileChannelStore(path)
  const provider = session({
    account: privateKeyToAccount(privateKey),
    client: createClient({ chain, transport: http(rpcUrl) }),
    store,
  })
  const client = createPublicClient({ chain, transport: mppHttp(url, { provider }), cacheTime: 0 })
  console.log('ready')
  for await (const _ of process.stdin) break
  let ok = 0
  try {
    for (let i = 1; i <= Number(calls); i++) {
      await client.getBalance({ address: '0x' + i.toString(16).padStart(40, '0') })
      ok++
    }
  } catch (error) {
    console.error(error)
  }
  console.log(JSON.stringify({ ok }))
  await store.close()
  process.exit(0)
`

function run(args: string[]) {
  return spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', payer, '--', ...args],
    {
      cwd: root,
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  )
}

/** The lines `child` prints, one at a time. */
function linesOf(child: ChildProcess) {
  if (!child.stdout) throw new Error('no stdout')
  return createInterface({ input: child.stdout })[Symbol.asyncIterator]()
}

test('two OS processes sharing one fileChannelStore, started at the same moment: one channel', async () => {
  const { net } = localnet
  const rpc = await localnet.startPaidRpc({ intent: 'session' })
  const plain = createPublicClient({ chain: net.chain, transport: http(net.rpcUrl), cacheTime: 0 })
  const from = await plain.getBlockNumber()
  const { address, privateKey } = net.accounts[0]!
  const calls = 5
  const children = [0, 1].map(() =>
    run([
      join(dir, 'channels.db'),
      rpc.url,
      net.rpcUrl,
      String(net.chain.id),
      privateKey,
      String(calls),
    ]),
  )
  const lines = children.map(linesOf)
  try {
    expect((await Promise.all(lines.map((line) => line.next()))).map(({ value }) => value)).toEqual(
      ['ready', 'ready'],
    )
    for (const child of children) child.stdin?.end('go\n')
    const results = (await Promise.all(lines.map((line) => line.next()))).map(({ value }) =>
      JSON.parse(String(value)),
    )
    expect(results).toEqual([{ ok: calls }, { ok: calls }])
  } finally {
    for (const child of children) child.kill()
  }

  const logs = await plain.getLogs({ address: Addresses.tip20ChannelReserve, fromBlock: from })
  const opened = parseEventLogs({
    abi: Abis.tip20ChannelReserve,
    logs,
    eventName: 'ChannelOpened',
  }).filter((log) => (log.args.payer as Address).toLowerCase() === address.toLowerCase())
  expect(opened).toHaveLength(1)
  expect(rpc.counters.payments.open).toBe(1)
  expect(rpc.counters.forwarded).toBe(2 * calls)
}, 60_000)
