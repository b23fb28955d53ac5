/**
 * The suite's devnet mode (test/integration/devnet.test.ts), run as a user runs it against a
 * remote Tempo node, with the localnet standing in for that node: reached over https, under a
 * certificate a test CA signed (trusted through NODE_EXTRA_CA_CERTS), under a hostname that is
 * not a loopback name (resolved to 127.0.0.1 by a lookup the child process preloads), and given
 * nothing but the RPC URL and one funded key. Nothing leaves this machine.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Actions } from 'viem/tempo'
import { afterAll, expect, test } from 'vitest'
import { useLocalnet, walletClient } from '../support/localnet.js'

const hostname = 'devnet.viem-mpp.test'
const localnet = useLocalnet()
const openssl = findOpenssl()
const required = process.env.VIEM_MPP_REQUIRE_TOOLS === '1'
if (!openssl && !required)
  console.info(
    'devnetMode.test.ts: not run — no openssl to make the test CA (apt-get install openssl).',
  )

const dir = mkdtempSync(join(tmpdir(), 'viem-mpp-devnet-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

test.runIf(openssl || required)(
  'devnet.test.ts passes against the localnet reached as a remote node: https under a test CA, a hostname that is not loopback, one funded key',
  async () => {
    if (!openssl) throw new Error('openssl is missing: apt-get install openssl')
    const { key, cert } = testCertificates(dir)
    const { net } = localnet
    // An https front for the localnet's RPC, as a remote node's would be.
    const front = createServer({ key, cert }, async (request, response) => {
      const chunks: Buffer[] = []
      for await (const chunk of request) chunks.push(chunk as Buffer)
      const answer = await fetch(net.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: Buffer.concat(chunks),
      })
      response
        .writeHead(answer.status, { 'content-type': 'application/json' })
        .end(Buffer.from(await answer.arrayBuffer()))
    })
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = front.address() as AddressInfo
      // A funded key that is not one of the localnet's dev accounts.
      const payerKey = generatePrivateKey()
      await Actions.token.transferSync(walletClient(net, 6), {
        to: privateKeyToAccount(payerKey).address,
        amount: 10_000_000n,
        token: net.currency,
      })
      const caPath = join(dir, 'ca.pem')
      const { code, output } = await run(
        [join('node_modules', '.bin', 'vitest'), 'run', 'test/integration/devnet.test.ts'],
        {
          VIEM_MPP_DEVNET_RPC_URL: `https://${hostname}:${port}`,
          VIEM_MPP_DEVNET_PAYER_KEY: payerKey,
          NODE_EXTRA_CA_CERTS: caPath,
          NODE_OPTIONS: `--import ${new URL('../support/testHostLookup.mjs', import.meta.url).pathname}`,
          VIEM_MPP_TEST_HOSTS: `${hostname}=127.0.0.1`,
        },
      )
      expect(output).not.toContain('not run')
      expect(output).toMatch(/Tests\s+2 passed \(2\)/)
      expect(code).toBe(0)
    } finally {
      front.close()
      front.closeAllConnections()
    }
  },
  120_000,
)

/** Runs `argv` with `env` added to this process's (vitest's own variables left out). */
function run(argv: string[], env: Record<string, string>) {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST') && name !== 'TEST'),
  )
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, argv, {
      env: { ...inherited, ...env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => {
      output += chunk
    })
    child.stderr.on('data', (chunk) => {
      output += chunk
    })
    child.on('close', (code) => resolve({ code, output }))
  })
}

function findOpenssl() {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * A test CA (`dir`/ca.pem), and the key and certificate it signed for {@link hostname}, made with
 * openssl.
 */
function testCertificates(dir: string) {
  const at = (name: string) => join(dir, name)
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=viem-mpp test CA',
  )
  ssl(
    'req',
    ...ec,
    '-keyout',
    at('server.key'),
    '-out',
    at('server.csr'),
    '-subj',
    `/CN=${hostname}`,
  )
  writeFileSync(at('server.ext'), `subjectAltName=DNS:${hostname}\nbasicConstraints=CA:FALSE\n`)
  ssl(
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-out',
    at('server.pem'),
    '-days',
    '2',
    '-extfile',
    at('server.ext'),
  )
  return {
    key: readFileSync(at('server.key'), 'utf8'),
    cert: readFileSync(at('server.pem'), 'utf8'),
  }
}
