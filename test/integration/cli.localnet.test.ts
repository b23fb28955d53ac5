import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { expect, test } from 'vitest'
import {
  cliCommand,
  commandLineOf,
  descendantsOf,
  isRunning,
  linesOf,
  root,
  runCli,
  spawnCli,
} from '../support/cli.js'

/**
 * Whether process `pid` is an anvil (not the shell that runs it). The checks after a stop look at
 * anvil itself: its shell waits for it before exiting, while the shell's stdin watcher may take a
 * moment longer to exit once it has killed anvil.
 */
function isAnvil(pid: number) {
  return /\/anvil$/.test(commandLineOf(pid).split(' ')[0] ?? '')
}

/** The anvil processes on this machine started with `--port port`. */
function anvilsOnPort(port: number) {
  return descendantsOf(1).filter(
    (pid) => isAnvil(pid) && commandLineOf(pid).includes(` --port ${port} `),
  )
}

/** The first line `child` prints on stdout. */
async function firstLine(child: ChildProcess) {
  if (!child.stdout) throw new Error('no stdout')
  const lines = createInterface({ input: child.stdout })
  const [line] = (await once(lines, 'line')) as [string]
  lines.close()
  return line
}

/** Starts `viem-mpp localnet --json ...args` and waits until it is up: its details and processes. */
async function started(args: readonly string[] = []) {
  const child = spawnCli(['localnet', '--json', ...args])
  let stderr = ''
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const details = JSON.parse(await firstLine(child))
  const processes = descendantsOf(child.pid as number)
  return { child, details, processes, exited, stderr: () => stderr }
}

/**
 * Waits until the localnet that `parent` (a shell, npm) runs is up, with one anvil under it, and
 * stops it by sending `signal` to `parent`: what the CLI printed on stderr as it stopped (it
 * holds the pipe's other end until it exits), and the anvils still running.
 */
async function stopUnder(parent: ChildProcess, signal: NodeJS.Signals) {
  if (!parent.stderr) throw new Error('no stderr')
  const details = JSON.parse(await firstLine(parent))
  expect(details.chainId).toBe(1337)
  const processes = descendantsOf(parent.pid as number)
  expect(processes.filter(isAnvil)).toHaveLength(1)
  const ended = once(parent.stderr, 'end')
  let output = ''
  parent.stderr.on('data', (chunk) => {
    output += chunk
  })
  parent.kill(signal)
  await ended
  return { lines: linesOf(output), anvilsLeft: processes.filter(isAnvil).filter(isRunning) }
}

test('--help: exit 0, every flag documented', async () => {
  const run = await runCli(['localnet', '--help'])
  expect(run.code).toBe(0)
  expect(run.stderr).toBe('')
  for (const flag of [
    '--port N',
    '--chain-id N',
    '--anvil-binary PATH',
    '--start-timeout MS',
    '--stop-on-stdin-close',
    '--json',
    '--verbose',
    '-h, --help',
  ])
    expect(run.stdout).toContain(flag)
})

test('--port 1 (a port fetch refuses): one line, exit 1, no anvil left', async () => {
  const run = await runCli(['localnet', '--port', '1'])
  expect(run).toEqual({
    code: 1,
    stdout: '',
    stderr:
      'viem-mpp: Port 1 is one that fetch refuses to connect to (a "bad port" of the Fetch standard): pick another --port, or omit it for a free one.\n',
  })
  // The anvil it started on port 1 was stopped with it.
  expect(anvilsOnPort(1)).toEqual([])
})

test('a port taken: a line saying so, and what to do with the command line, exit 1', async () => {
  const first = await started()
  try {
    const port = new URL(first.details.rpcUrl).port
    // The RPC URL's port is taken by the first localnet.
    const run = await runCli(['localnet', '--port', port])
    expect(run.code).toBe(1)
    expect(run.stdout).toBe('')
    expect(linesOf(run.stderr)).toEqual([
      `viem-mpp: Cannot listen on 127.0.0.1:${port}: the port is taken.`,
      '  Pick another port, or omit `--port` for a free one.',
    ])
  } finally {
    first.child.kill('SIGTERM')
    await first.exited
  }
})

test.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)(
  '%s: the localnet stops, exit 0, no anvil process left',
  async (signal) => {
    const { child, details, processes, exited, stderr } = await started(['--chain-id', '4321'])
    expect(details).toMatchObject({ chainId: 4321, currency: expect.stringMatching(/^0x20c0/i) })
    expect(details.accounts).toHaveLength(10)
    // The node answers, with the chain id asked for.
    const response = await fetch(details.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId' }),
    })
    expect(await response.json()).toMatchObject({ result: '0x10e1' })
    const anvils = processes.filter(isAnvil)
    expect(anvils).toHaveLength(1)

    child.kill(signal)
    expect(await exited).toEqual([0, null])
    expect(linesOf(stderr())).toEqual([`Stopping the localnet (${signal})...`, 'Stopped.'])
    expect(processes.filter(isAnvil).filter(isRunning)).toEqual([])
  },
)

test('--stop-on-stdin-close: the end of stdin stops it', async () => {
  const { child, processes, exited, stderr } = await started(['--stop-on-stdin-close'])
  expect(processes.filter(isAnvil)).toHaveLength(1)
  child.stdin.end()
  expect(await exited).toEqual([0, null])
  expect(linesOf(stderr())).toEqual(['Stopping the localnet (end of stdin)...', 'Stopped.'])
  expect(processes.filter(isAnvil).filter(isRunning)).toEqual([])
})

test('its parent killed (say npm, by SIGKILL): it stops by itself, no anvil left', async () => {
  const command = [...cliCommand, 'localnet', '--json'].map((arg) => `'${arg}'`).join(' ')
  // A shell that starts the CLI and, killed, passes nothing on: as `npm run` can be.
  const shell = spawn('/bin/sh', ['-c', `${command} & wait`], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const stopped = await stopUnder(shell, 'SIGKILL')
  expect(stopped.lines).toEqual(['Stopping the localnet (parent exited)...', 'Stopped.'])
  expect(stopped.anvilsLeft).toEqual([])
})

test('`npm run localnet` stopped by SIGTERM to npm: no anvil left', async () => {
  const npm = spawn('npm', ['run', '--silent', 'localnet', '--', '--json'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const stopped = await stopUnder(npm, 'SIGTERM')
  expect(stopped.lines).toEqual(['Stopping the localnet (SIGTERM)...', 'Stopped.'])
  expect(stopped.anvilsLeft).toEqual([])
})
