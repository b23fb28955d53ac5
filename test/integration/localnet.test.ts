import { randomUUID } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { basename } from 'node:path'
import { type Hex, maxUint256 } from 'viem'
import { privateKeyToAddress } from 'viem/accounts'
import { Addresses } from 'viem/tempo'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  AnvilStartError,
  type Localnet,
  LocalnetStartError,
  startLocalnet,
} from '../../src/testing/index.js'
import { balanceOf as balanceOfOn, tip20, walletClient } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'

const pathUsd = '0x20c0000000000000000000000000000000000000'

// Every process spawned from here inherits this variable, so the anvil processes this file starts
// can be told apart from those of other test files and other users of the machine, even if their
// wrapper shell has died and they were reparented.
const tagVariable = 'VIEM_MPP_LOCALNET_TEST_TAG'
const tag = randomUUID()
process.env[tagVariable] = tag

/** PIDs of the live `anvil --network tempo` processes started by this test file. */
function anvilPids(): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // A zombie's cmdline is empty, so exited processes do not count.
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')
      if (basename(argv[0] ?? '') !== 'anvil') continue
      const network = argv.indexOf('--network')
      if (network === -1 || argv[network + 1] !== 'tempo') continue
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0')
      if (environ.includes(`${tagVariable}=${tag}`)) pids.push(Number(entry))
    } catch {
      // The process exited while it was being read.
    }
  }
  return pids
}

/** Whether a process with this PID is alive (not gone, not a zombie). */
function isAlive(pid: number) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

function chainIdAt(rpcUrl: string) {
  return fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
  }).then(async (response) => (await response.json()) as { result: Hex })
}

/** The error a promise rejects with (fails the test if it resolves). */

function listen(server: Server) {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      resolve(typeof address === 'object' && address ? address.port : 0)
    })
  })
}

describe('startLocalnet()', () => {
  let net: Localnet
  let anvilsBefore: number
  beforeAll(async () => {
    anvilsBefore = anvilPids().length
    net = await startLocalnet()
  })
  afterAll(() => net?.stop())

  const clientFor = (index: number) => walletClient(net, index)

  const balanceOf = (address: Hex) => balanceOfOn(net, address)

  test('starts one anvil process', () => {
    expect(anvilPids().length).toBe(anvilsBefore + 1)
  })

  test('chain id 1337, at rpcUrl', async () => {
    expect(net.chain.id).toBe(1337)
    expect(net.chain.rpcUrls.default.http[0]).toBe(net.rpcUrl)
    expect(net.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(await chainIdAt(net.rpcUrl)).toEqual({ jsonrpc: '2.0', id: 1, result: '0x539' })
    expect(await clientFor(0).getChainId()).toBe(1337)
  })

  test('10 funded dev accounts whose addresses match their keys', async () => {
    expect(net.accounts).toHaveLength(10)
    expect(new Set(net.accounts.map((account) => account.address)).size).toBe(10)
    // anvil's first dev account.
    expect(net.accounts[0]!.address).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266')
    for (const account of net.accounts) {
      expect(account.privateKey).toMatch(/^0x[0-9a-f]{64}$/)
      expect(privateKeyToAddress(account.privateKey)).toBe(account.address)
      expect(await balanceOf(account.address)).toBeGreaterThan(0n)
    }
  })

  test('currency is pathUSD', () => {
    expect(net.currency).toBe(pathUsd)
  })

  test('the channel reserve has code at its TIP-1034 address', async () => {
    expect(Addresses.tip20ChannelReserve).toBe('0x4d50500000000000000000000000000000000000')
    const code = await clientFor(0).getCode({ address: Addresses.tip20ChannelReserve })
    expect(code?.length ?? 0).toBeGreaterThan(2)
  })

  test.each([
    ['different', [1_234n, 4_321n]],
    ['identical', [777n, 777n]],
  ])(
    'concurrent %s Tempo transfers from one account use expiring nonces and both land',
    async (_, amounts) => {
      const sender = clientFor(3)
      const recipient = net.accounts[4]!.address
      const before = await balanceOf(recipient)
      // Two requests for one sender in the same tick: viem prepares both with expiring nonces.
      const hashes = await Promise.all(
        amounts.map((amount) =>
          sender.writeContract({
            address: net.currency,
            abi: tip20,
            functionName: 'transfer',
            args: [recipient, amount],
          }),
        ),
      )
      expect(new Set(hashes).size).toBe(2)
      const receipts = await Promise.all(
        hashes.map((hash) => sender.waitForTransactionReceipt({ hash, timeout: 15_000 })),
      )
      expect(receipts.map((receipt) => receipt.status)).toEqual(['success', 'success'])
      for (const hash of hashes) {
        const transaction = (await sender.getTransaction({ hash })) as {
          type: string
          nonce: bigint
          nonceKey?: bigint
        }
        expect(transaction.type).toBe('tempo')
        expect(transaction.nonceKey).toBe(maxUint256)
        expect(transaction.nonce).toBe(0n)
      }
      expect((await balanceOf(recipient)) - before).toBe(amounts[0]! + amounts[1]!)
    },
  )

  test('attaching to its rpcUrl gives the same chain, and stopping that does not stop it', async () => {
    const anvils = anvilPids().length
    const attached = await startLocalnet({ rpcUrl: net.rpcUrl })
    expect(anvilPids().length).toBe(anvils)
    expect(attached.rpcUrl).toBe(net.rpcUrl)
    expect(attached.chain.id).toBe(1337)
    expect(attached.chain.rpcUrls.default.http[0]).toBe(net.rpcUrl)
    expect(attached.currency).toBe(pathUsd)
    expect(attached.accounts).toEqual(net.accounts)
    await attached.stop()
    await attached.stop()
    expect(anvilPids().length).toBe(anvils)
    expect((await chainIdAt(net.rpcUrl)).result).toBe('0x539')
  })
})

describe('stop()', () => {
  test('ends the anvil process and the RPC endpoint; a second call is fine', async () => {
    const before = anvilPids()
    const net = await startLocalnet()
    let stopped = false
    try {
      const during = anvilPids()
      expect(during.length).toBe(before.length + 1)
      const [anvil] = during.filter((pid) => !before.includes(pid))
      expect(anvil).toBeDefined()
      expect((await chainIdAt(net.rpcUrl)).result).toBe('0x539')

      await net.stop()
      stopped = true
      expect(isAlive(anvil!)).toBe(false)
      expect(anvilPids()).toEqual(before)
      const error = await rejectionOf(chainIdAt(net.rpcUrl))
      expect((error.cause as { code?: string } | undefined)?.code).toBe('ECONNREFUSED')

      await net.stop()
      expect(anvilPids()).toEqual(before)
    } finally {
      if (!stopped) await net.stop()
    }
  })

  test('concurrent calls both resolve after the process has ended', async () => {
    const before = anvilPids()
    const net = await startLocalnet()
    expect(anvilPids().length).toBe(before.length + 1)
    await Promise.all([net.stop(), net.stop()])
    expect(anvilPids()).toEqual(before)
  })
})

describe('bad input fails and leaves no process behind', () => {
  test('a taken port', async () => {
    const server = createServer()
    const port = await listen(server)
    try {
      const before = anvilPids()
      const error = await rejectionOf(startLocalnet({ port }))
      expect(error).toBeInstanceOf(LocalnetStartError)
      expect((error as LocalnetStartError).shortMessage).toBe(
        `Cannot listen on 127.0.0.1:${port}: the port is taken.`,
      )
      expect(error.message).toContain('Pick another port, or omit `port` for a free one.')
      expect(anvilPids()).toEqual(before)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })

  test('a port taken by another localnet', async () => {
    const before = anvilPids()
    const first = await startLocalnet()
    try {
      // Its RPC URL's port.
      const port = Number(new URL(first.rpcUrl).port)
      const error = await rejectionOf(startLocalnet({ port }))
      expect(error).toBeInstanceOf(LocalnetStartError)
      expect((error as LocalnetStartError).shortMessage).toBe(
        `Cannot listen on 127.0.0.1:${port}: the port is taken.`,
      )
      expect(anvilPids().length).toBe(before.length + 1)
    } finally {
      await first.stop()
    }
    expect(anvilPids()).toEqual(before)
  })

  test('a missing anvil binary', async () => {
    const before = anvilPids()
    const error = await rejectionOf(startLocalnet({ anvilBinary: '/nonexistent/anvil' }))
    expect(error).toBeInstanceOf(AnvilStartError)
    expect(error.name).toBe('AnvilStartError')
    expect((error as AnvilStartError).shortMessage).toBe(
      'anvil binary not found at /nonexistent/anvil.',
    )
    expect(error.message).toContain('anvil binary not found')
    expect(error.message).toContain('Pass `anvilBinary` with the path to an anvil 1.7.x binary.')
    expect(anvilPids()).toEqual(before)
  })

  test('an unreachable rpcUrl, without leaking its credentials', async () => {
    const before = anvilPids()
    const error = await rejectionOf(
      startLocalnet({ rpcUrl: 'http://user:secret@127.0.0.1:1/path?apikey=secret' }),
    )
    expect(error).toBeInstanceOf(LocalnetStartError)
    expect(error.name).toBe('LocalnetStartError')
    expect((error as LocalnetStartError).shortMessage).toBe(
      'No JSON-RPC node answers at http://127.0.0.1:1.',
    )
    expect(error.message).toContain('No JSON-RPC node answers')
    expect(error.message).toContain('Check the URL, or omit `rpcUrl` to start a localnet.')
    for (let cause: unknown = error; cause instanceof Error; cause = cause.cause) {
      expect(cause.message).not.toContain('secret')
      expect(cause.message).not.toContain('user')
      expect(cause.message).not.toContain('/path')
    }
    expect(anvilPids()).toEqual(before)
  })
})
