/**
 * The examples, run as their READMEs say (`npm run example:…`), with their output checked
 * line by line: what they paid, and what the server was paid.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Challenge } from 'mppx'
import { createClient, createPublicClient, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { charge, mppHttp, type PaymentProvider, session } from 'viem-mpp'
import { defineLocalnetChain } from 'viem-mpp/testing'
import { afterEach, expect, test } from 'vitest'
import { noPayments } from '../support/counters.js'
import { useLocalnet } from '../support/localnet.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const run = promisify(execFile)
const localnet = useLocalnet()

test('npm run example:script: the first run opens a channel, the second reuses it from the file store', async () => {
  const { stdout } = await run('npm', ['run', '--silent', 'example:script'], {
    cwd: root,
    timeout: 60_000,
  })
  expect(
    stdout
      .replace(/^block number: \d+$/gm, 'block number: N')
      .trimEnd()
      .split('\n'),
  ).toEqual([
    'run 1:',
    'paid $0.001 by tempo/session, deposited $1',
    'block number: N',
    'paid $0.001 by tempo/session',
    'chain id: 1337',
    'spent $0.002 in 2 payments, deposited $1',
    'run 2:',
    'paid $0.001 by tempo/session',
    'block number: N',
    'paid $0.001 by tempo/session',
    'chain id: 1337',
    'spent $0.002 in 2 payments, deposited $0',
    'server: 1 channel opened, 3 vouchers, 0 charges',
  ])
})

test('examples/script/payForRpc.ts with no key on the machine pays nothing and says how to set one up', async () => {
  const rpc = await localnet.startPaidRpc({ intent: ['session', 'charge'] })
  const failure = await run(process.execPath, ['--import', 'tsx', 'examples/script/payForRpc.ts'], {
    cwd: root,
    timeout: 60_000,
    env: {
      ...process.env,
      PAID_RPC_URL: rpc.url,
      LOCALNET_RPC_URL: localnet.net.rpcUrl,
      TEMPO_PRIVATE_KEY: '',
      TEMPO_HOME: '/nonexistent/viem-mpp-example-home',
    },
  }).catch((error: { code: number; stdout: string; stderr: string }) => error)
  expect(failure).toMatchObject({ code: 1, stdout: '' })
  expect((failure as { stderr: string }).stderr).toContain('PaymentRequiredError')
  expect((failure as { stderr: string }).stderr).toContain('TEMPO_PRIVATE_KEY')
  expect(rpc.counters.payments).toEqual(noPayments)
  expect(rpc.counters.forwarded).toBe(0)
})

test('examples/script/payForRpc.ts without PAID_RPC_URL says so in one line', async () => {
  const failure = await run(process.execPath, ['--import', 'tsx', 'examples/script/payForRpc.ts'], {
    cwd: root,
    timeout: 60_000,
    env: { ...process.env, PAID_RPC_URL: '' },
  }).catch((error: { code: number; stdout: string; stderr: string }) => error)
  expect(failure).toMatchObject({
    code: 1,
    stdout: '',
    stderr: 'Set PAID_RPC_URL to the paid JSON-RPC endpoint.\n',
  })
})

let seller: ChildProcess | undefined
afterEach(() => {
  seller?.kill('SIGKILL')
  seller = undefined
})

test('npm run example:sell: sells a session and a charge, and reports what it earned on Ctrl+C', async () => {
  // `npm run example:sell` is `tsx examples/sellRpc/sellRpc.ts`, run here without tsx's own
  // process in between: a test that fails kills the seller itself, and its localnet with it.
  seller = spawn(process.execPath, ['--import', 'tsx', 'examples/sellRpc/sellRpc.ts'], {
    cwd: root,
    env: { ...process.env, UPSTREAM_RPC_URL: '' },
  })
  const output = linesOf(seller)
  const paidUrl = (await output.next(/^selling JSON-RPC at (\S+) for 0\.001 pathUSD a request$/))[1]
  const localnetUrl = (await output.before)
    .map((line) => /^localnet \(unpaid, to prepare payments\): (\S+)$/.exec(line)?.[1])
    .find(Boolean)
  if (!paidUrl || !localnetUrl) throw new Error(`unexpected output: ${output.lines.join('\n')}`)

  // A browser may call it: preflight and 402 expose what a paying fetch needs.
  const preflight = await fetch(paidUrl, { method: 'OPTIONS' })
  expect(preflight.status).toBe(204)
  expect(preflight.headers.get('access-control-allow-headers')).toBe('authorization, content-type')
  const unpaid = await fetch(paidUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] }),
  })
  expect(unpaid.status).toBe(402)
  expect(unpaid.headers.get('access-control-expose-headers')).toBe(
    'www-authenticate, payment-receipt',
  )
  expect(Challenge.fromResponseList(unpaid).map(({ intent }) => intent)).toEqual([
    'session',
    'charge',
  ])
  // A forged credential is not forwarded.
  const forged = await fetch(paidUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Payment eyJmb28iOiJiYXIifQ' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] }),
  })
  expect(forged.status).toBe(402)

  const chain = defineLocalnetChain({ id: 1337, rpcUrl: localnetUrl })
  const chainClient = createClient({ chain, transport: http(localnetUrl) })
  const payer = (index: number) => {
    const privateKey = localnet.net.accounts[index]?.privateKey
    if (!privateKey) throw new Error(`no dev account ${index}`)
    return privateKeyToAccount(privateKey)
  }
  const paying = (provider: PaymentProvider) => {
    const paid: string[] = []
    const client = createPublicClient({
      chain,
      cacheTime: 0,
      transport: mppHttp(paidUrl, {
        provider,
        onReceipt: ({ quote }) => paid.push(`${quote.intent} ${quote.amount}`),
      }),
    })
    return { client, paid }
  }

  const byCharge = paying(charge({ account: payer(1), client: chainClient }))
  await byCharge.client.getBlockNumber()
  await byCharge.client.getBlockNumber()
  expect(byCharge.paid).toEqual(['charge 1000', 'charge 1000'])

  const sessionProvider = session({ account: payer(2), client: chainClient })
  const bySession = paying(sessionProvider)
  await bySession.client.getBlockNumber()
  await bySession.client.getBlockNumber()
  await bySession.client.getBlockNumber()
  expect(bySession.paid).toEqual(['session 1000', 'session 1000', 'session 1000'])
  const [closed] = await sessionProvider.close()
  expect(closed).toMatchObject({ settled: 3000n, refunded: 1_000_000n - 3000n })

  const exited = once(seller, 'exit')
  seller.kill('SIGINT')
  expect(await exited).toEqual([0, null])
  expect(
    output.lines.filter((line) => !line.startsWith('localnet ') && !line.startsWith('selling ')),
  ).toEqual([
    'tempo/charge: +0.001 pathUSD',
    'tempo/charge: +0.001 pathUSD',
    'tempo/session open: +0.001 pathUSD',
    'tempo/session voucher: +0.001 pathUSD',
    'tempo/session voucher: +0.001 pathUSD',
    'tempo/session close',
    'earned 0.003 pathUSD in vouchers and 0.002 in charges',
  ])
  // Its localnet stopped with it.
  await expect(fetch(localnetUrl, { method: 'POST', body: '{}' })).rejects.toThrow()
})

test('npm run example:vitest: the integration-test example passes', async () => {
  const { stdout } = await run(
    'npm',
    ['run', '--silent', 'example:vitest', '--', '--reporter=verbose'],
    {
      cwd: root,
      timeout: 60_000,
      env: { ...process.env, NO_COLOR: '1' },
    },
  )
  expect(stdout).toMatch(
    /✓ paidRpc\.test\.ts > pays one voucher per request, and the close settles exactly that/,
  )
  expect(stdout).toMatch(
    /✓ paidRpc\.test\.ts > refuses a deposit above maxAmount, and nothing is paid/,
  )
  expect(stdout).toMatch(/Tests {2}2 passed \(2\)/)
})

/** The lines a process prints, as they come; `next(pattern)` waits for the first that matches. */
function linesOf(child: ChildProcess) {
  const lines: string[] = []
  let buffered = ''
  const waiters: (() => void)[] = []
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk
    const parts = buffered.split('\n')
    buffered = parts.pop() ?? ''
    lines.push(...parts)
    for (const waiter of waiters.splice(0)) waiter()
  })
  let before = Promise.resolve<string[]>([])
  return {
    lines,
    get before() {
      return before
    },
    next(pattern: RegExp) {
      return new Promise<RegExpExecArray>((resolve, reject) => {
        const check = () => {
          const index = lines.findIndex((line) => pattern.test(line))
          if (index >= 0) {
            before = Promise.resolve(lines.slice(0, index))
            return resolve(pattern.exec(lines[index] ?? '') as RegExpExecArray)
          }
          waiters.push(check)
        }
        child.once('exit', (code) => reject(new Error(`exited (${code}): ${lines.join('\n')}`)))
        check()
      })
    },
  }
}
