import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../..', import.meta.url))

/** How `viem-mpp` is started in tests: the source through tsx, as `npm run localnet` does. */
export const cliCommand = [process.execPath, '--import', 'tsx', 'src/cli/index.ts'] as const

export type CliRun = { code: number | null; stdout: string; stderr: string }

/** How long a command may run before `runCli` ends it as hung (ms): under a test's 60 s. */
const hangAfter = 45_000

/**
 * Runs `viem-mpp args` to its end, with `env` over an environment without any Tempo key or home
 * (so the machine's own ~/.tempo is never read), and resolves with its exit code and output.
 *
 * A command still running after 45 s rejects, with what it printed and the handles that kept it
 * alive (Node's diagnostic report, asked for with SIGUSR2 before it is killed): a hang names its
 * cause instead of timing the test out.
 */
export async function runCli(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): Promise<CliRun> {
  const report = join(tmpdir(), `viem-mpp-cli-${randomUUID()}.json`)
  const child = spawnCli(args, env, [
    '--report-on-signal',
    `--report-directory=${dirname(report)}`,
    `--report-filename=${basename(report)}`,
  ])
  child.stdin.end()
  const output = { stdout: '', stderr: '' }
  for (const stream of ['stdout', 'stderr'] as const)
    child[stream].setEncoding('utf8').on('data', (chunk: string) => {
      output[stream] += chunk
    })
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(async () => {
      child.kill('SIGUSR2')
      // Killed and reported whatever the report holds: a hang must never outlive its test.
      const why = await whatKeptAlive(report).catch((error: Error) => `no report: ${error.message}`)
      child.kill('SIGKILL')
      const command = `viem-mpp ${args.slice(0, 2).join(' ')}`
      const { stdout, stderr } = output
      reject(
        new Error(
          `${command} did not end in ${hangAfter / 1000} s\n${why}\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      )
    }, hangAfter)
  })
  try {
    const [code] = await Promise.race([exited, hung])
    return { code, ...output }
  } finally {
    clearTimeout(timer)
    rmSync(report, { force: true })
  }
}

/**
 * What kept a command alive: the referenced handles and the JavaScript stack in the diagnostic
 * report it writes to `path` on SIGUSR2, read once it is whole (5 s at most).
 */
async function whatKeptAlive(path: string) {
  for (let attempt = 0; attempt < 50; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    let report: DiagnosticReport
    try {
      report = JSON.parse(readFileSync(path, 'utf8'))
    } catch {
      continue // not written yet, or not whole
    }
    const handles = report.libuv
      .filter((handle) => handle.is_active && handle.is_referenced)
      .map(({ type, pid, localEndpoint, remoteEndpoint, fd }) =>
        JSON.stringify({ type, pid, localEndpoint, remoteEndpoint, fd }),
      )
    const stack = report.javascriptStack.stack ?? ['(none: waiting in the event loop)']
    return `live handles:\n${handles.join('\n')}\nJavaScript stack:\n${stack.join('\n')}`
  }
  return 'no diagnostic report'
}

/** The parts of Node's diagnostic report (`--report-on-signal`) a hang is explained by. */
type DiagnosticReport = {
  libuv: {
    type: string
    is_active: boolean
    is_referenced: boolean
    pid?: number
    fd?: number
    localEndpoint?: unknown
    remoteEndpoint?: unknown
  }[]
  javascriptStack: { stack?: string[] }
}

/** Starts `viem-mpp args` without waiting for it. */
export function spawnCli(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  nodeOptions: readonly string[] = [],
) {
  const [node, ...prefix] = cliCommand
  return spawn(node, [...nodeOptions, ...prefix, ...args], {
    cwd: root,
    env: cliEnv(env),
    stdio: ['pipe', 'pipe', 'pipe'],
  })
}

function cliEnv(env: Record<string, string | undefined>) {
  const base: Record<string, string | undefined> = {
    ...process.env,
    TEMPO_HOME: '/nonexistent/viem-mpp-test-home',
  }
  delete base.TEMPO_PRIVATE_KEY
  return { ...base, ...env }
}

/** The lines of a CLI's stderr (a one-line error is exactly one). */
export function linesOf(text: string) {
  return text.split('\n').filter((line) => line !== '')
}

/** Every process below `pid` (children, their children, ...), from /proc. */
export function descendantsOf(pid: number): number[] {
  const parents = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const parent = parentOf(Number(name))
    if (parent !== undefined) parents.set(parent, [...(parents.get(parent) ?? []), Number(name)])
  }
  const found: number[] = []
  for (let queue = [pid]; queue.length > 0; ) {
    const children = parents.get(queue.shift() as number) ?? []
    found.push(...children)
    queue.push(...children)
  }
  return found
}

/** Whether process `pid` runs (a zombie, waiting to be reaped, does not). */
export function isRunning(pid: number) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** The command line of process `pid`, or `''` once it is gone. */
export function commandLineOf(pid: number) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
  } catch {
    return ''
  }
}

function parentOf(pid: number) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name may hold spaces and parentheses: the fields follow its last `)`.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return undefined
  }
}
