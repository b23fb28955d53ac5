import { execFile, spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../..', import.meta.url))

/** How `viem-mpp` is started in tests: the source through tsx, as `npm run localnet` does. */
export const cliCommand = [process.execPath, '--import', 'tsx', 'src/cli/index.ts'] as const

export type CliRun = { code: number | null; stdout: string; stderr: string }

/**
 * Runs `viem-mpp args` to its end, with `env` over an environment without any Tempo key or home
 * (so the machine's own ~/.tempo is never read), and resolves with its exit code and output.
 */
export function runCli(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): Promise<CliRun> {
  const [node, ...prefix] = cliCommand
  return new Promise((resolve) => {
    execFile(
      node,
      [...prefix, ...args],
      { cwd: root, env: cliEnv(env), timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: unknown }).code as number | null) : 0
        resolve({ code: typeof code === 'number' ? code : null, stdout, stderr })
      },
    )
  })
}

/** Starts `viem-mpp args` without waiting for it. */
export function spawnCli(args: readonly string[], env: Record<string, string | undefined> = {}) {
  const [node, ...prefix] = cliCommand
  return spawn(node, [...prefix, ...args], {
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
