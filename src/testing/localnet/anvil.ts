import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { BaseError } from '../../errors.js'
import { stopper, tiedToParent } from '../process.js'
import { hardfork } from './chain.js'

export type AnvilOptions = {
  /** Path to an `anvil` binary. Default: the one shipped by the `@foundry-rs/anvil-<platform>` package. */
  binary?: string | undefined
  /** Chain id. */
  chainId: number
  /** Loopback port; `0` lets the OS pick a free one. */
  port: number
  /** How long to wait for anvil to listen, in ms. */
  startTimeout: number
}

export type Anvil = {
  /** The JSON-RPC URL anvil listens on. */
  rpcUrl: string
  /** Operating-system process id. */
  pid: number
  /** Ends the process and waits for it to exit. Idempotent. */
  stop(): Promise<void>
}

export type AnvilStartErrorType = AnvilStartError & { name: 'AnvilStartError' }

/** Anvil could not be found or did not start listening. */
export class AnvilStartError extends BaseError {
  constructor(
    shortMessage: string,
    { details, metaMessages }: { details?: string; metaMessages?: string[] } = {},
  ) {
    super(shortMessage, { details, metaMessages, name: 'AnvilStartError' })
  }
}

/**
 * Spawns anvil in Tempo mode on loopback and resolves once it listens.
 *
 * The process is killed if it fails to start, and when this Node process exits,
 * so a crashed test run leaves nothing behind.
 */
export async function startAnvil(options: AnvilOptions): Promise<Anvil> {
  const { chainId, port, startTimeout } = options
  const binary = options.binary ?? resolveAnvilBinary()
  if (!existsSync(binary))
    throw new AnvilStartError(`anvil binary not found at ${binary}.`, {
      metaMessages: ['Pass `anvilBinary` with the path to an anvil 1.7.x binary.'],
    })
  // `--block-time 1 --mixed-mining` keeps the latest block fresh (expiring-nonce transactions are
  // checked against its timestamp) while still mining each transaction as it arrives.
  const args = [
    '--network',
    'tempo',
    '--hardfork',
    hardfork,
    '--chain-id',
    String(chainId),
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--block-time',
    '1',
    '--mixed-mining',
  ]
  const child = spawn('/bin/sh', ['-c', tiedToParent, binary, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const stop = stopper(child)
  try {
    const listening = await waitForListening(child, startTimeout)
    return { rpcUrl: `http://${listening}`, pid: child.pid as number, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/** Locates the anvil binary of the `@foundry-rs/anvil` npm distribution for this platform. */
function resolveAnvilBinary(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch
  const name = `@foundry-rs/anvil-${process.platform}-${arch}`
  const binary = process.platform === 'win32' ? 'anvil.exe' : 'anvil'
  try {
    const require = createRequire(import.meta.url)
    const path = join(dirname(require.resolve(`${name}/package.json`)), 'bin', binary)
    if (existsSync(path)) return path
  } catch {}
  throw new AnvilStartError('anvil binary not found.', {
    metaMessages: [
      `Install it with \`npm install --save-dev @foundry-rs/anvil@1.7.1\` (it provides ${name}),`,
      'or pass `anvilBinary` with the path to an anvil 1.7.x binary.',
    ],
  })
}

function waitForListening(child: ChildProcess, timeout: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = ''
    const done = (error?: Error, address?: string) => {
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.off('exit', onExit)
      child.off('error', onError)
      // Keep draining anvil's log so a full pipe never blocks it.
      child.stdout?.resume()
      child.stderr?.resume()
      if (error) reject(error)
      else resolve(address as string)
    }
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8_192)
      const match = /Listening on (\S+:\d+)/.exec(output)
      if (match) done(undefined, match[1])
    }
    const onStderr = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8_192)
    }
    const onExit = (code: number | null) =>
      done(
        new AnvilStartError(`anvil exited (code ${code}) before listening.`, {
          details: lastLines(output),
          metaMessages: [
            'If the port is taken, pass another `port` or omit it to pick a free one.',
          ],
        }),
      )
    const onError = (error: Error) =>
      done(new AnvilStartError(`anvil could not be started: ${error.message}`))
    const timer = setTimeout(
      () =>
        done(
          new AnvilStartError(`anvil did not listen within ${timeout} ms.`, {
            details: lastLines(output),
          }),
        ),
      timeout,
    )
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onStderr)
    child.once('exit', onExit)
    child.once('error', onError)
  })
}

function lastLines(output: string) {
  return output.trim().split('\n').slice(-5).join('\n')
}
