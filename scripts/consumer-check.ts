/**
 * Installs viem-mpp as a newcomer would, and checks that its README's quick start works as
 * written:
 *
 * 1. `npm pack` (which builds dist/ and writes the published package.json) of a copy of the
 *    repository; the packed package.json has no scripts, devDependencies or overrides; publint and
 *    arethetypeswrong on the tarball (the package is ESM-only: attw's `esm-only` profile);
 * 2. an empty folder outside the repository, where the commands
 *    of README.md's `<!-- check: install -->` block are run as written, but for `viem-mpp`
 *    itself, which is the tarball; `npm ls` must then find a valid tree;
 * 3. the README's `<!-- check: quickstart -->` block saved as quickstart.ts, type-checked with
 *    the project's own `tsc` and the tsconfig `tsc --init` writes, and run with
 *    `node quickstart.ts` (this Node, which must strip types: ≥ 22.18): its output must be the
 *    README's `<!-- check: output -->` block, line for line.
 *
 *   npm run consumer-check [-- README.md]
 *
 * npm uses its usual cache (offline first) and registry.
 */
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { commandsOf, markedBlock, readmeBlocks } from './readme.js'

const root = fileURLToPath(new URL('..', import.meta.url))

/** How long each step took, in ms, by name. */
export type Timings = Record<string, number>

/**
 * The arguments of one README install command, with `viem-mpp` replaced by `tarball`. Only
 * plain `npm` commands are run: no shell, so nothing in the README can do more than npm does.
 */
export function installArguments(command: string, tarball: string): string[] {
  if (/["'`$;&|<>\\(){}*?]/.test(command))
    throw new Error(`An install command must be plain words, without shell syntax: ${command}`)
  const [program, ...args] = command.split(/\s+/)
  if (program !== 'npm') throw new Error(`An install command must run npm: ${command}`)
  const installs = args[0] === 'install' || args[0] === 'i' || args[0] === 'add'
  return installs
    ? args.map((arg) => (arg === 'viem-mpp' || arg.startsWith('viem-mpp@') ? tarball : arg))
    : args
}

export async function consumerCheck({
  readme = join(root, 'README.md'),
  log = (line: string) => console.log(line),
}: {
  readme?: string | undefined
  log?: ((line: string) => void) | undefined
} = {}): Promise<{ output: string; timings: Timings }> {
  const blocks = readmeBlocks(await readFile(readme, 'utf8'))
  const install = commandsOf(markedBlock(blocks, 'install', 'sh'))
  const quickstart = markedBlock(blocks, 'quickstart', 'ts').code
  const expected = markedBlock(blocks, 'output', 'text').code

  const timings: Timings = {}
  const step = async <value>(name: string, fn: () => Promise<value>) => {
    const started = performance.now()
    const value = await fn()
    timings[name] = Math.round(performance.now() - started)
    log(`${name}: ${(timings[name] / 1000).toFixed(1)} s`)
    return value
  }

  const work = await mkdtemp(join(tmpdir(), 'viem-mpp-consumer-'))
  if (!relative(root, work).startsWith('..'))
    throw new Error(`The consumer project must be outside the repository: ${work}`)
  try {
    const tarball = await step('npm pack', async () => {
      // Packed from a copy, so that its build (npm's `prepack`) leaves this tree's dist/ and
      // package.json alone while other tests may be using them.
      const copy = join(work, 'viem-mpp')
      const skipped = (path: string) =>
        ['node_modules', '.git'].includes(basename(path)) || resolve(path) === join(root, 'dist')
      await cp(root, copy, { recursive: true, filter: (path) => !skipped(path) })
      await symlink(join(root, 'node_modules'), join(copy, 'node_modules'))
      const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], copy)
      const [{ filename }] = JSON.parse(stdout.slice(stdout.indexOf('['))) as [{ filename: string }]
      return join(work, filename)
    })
    await step('manifest', async () => {
      // The published package.json: nothing only this repository needs (no install script for
      // consumers' npm to warn about, no overrides that apply to nobody).
      const { stdout } = await run('tar', ['-xzOf', tarball, 'package/package.json'], work)
      const manifest = JSON.parse(stdout) as Record<string, unknown>
      const left = ['scripts', 'devDependencies', 'overrides'].filter((field) => field in manifest)
      if (left.length) throw new Error(`The packed package.json still has ${left.join(', ')}.`)
    })
    await step('publint', () => run(bin('publint'), ['--strict', tarball], root))
    await step('attw', () => run(bin('attw'), ['--profile', 'esm-only', tarball], root))

    const project = join(work, 'app')
    await mkdir(project)
    await step('npm install (README)', async () => {
      // The README's block makes the project itself (npm init, type=module).
      for (const command of install) await run('npm', installArguments(command, tarball), project)
      // A tree npm itself finds invalid (a peer out of range, say) fails here.
      await run('npm', ['ls', '--all'], project)
    })

    await step('tsc (quick start)', async () => {
      const { devDependencies } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'))
      const tools = ['typescript', '@types/node'].map((name) => `${name}@${devDependencies[name]}`)
      await run('npm', ['install', '--save-dev', ...tools], project)
      await writeFile(join(project, 'quickstart.ts'), quickstart)
      // A newcomer's tsconfig: `tsc --init`'s (strict, exactOptionalPropertyTypes,
      // noUncheckedIndexedAccess, verbatimModuleSyntax, …).
      const tsc = join(project, 'node_modules/.bin/tsc')
      await run(tsc, ['--init'], project)
      await run(tsc, ['-p', '.', '--noEmit'], project)
    })

    const output = await step('quick start', async () => {
      // As the README runs it: `node quickstart.ts` (Node strips the types).
      const { stdout } = await run(process.execPath, ['quickstart.ts'], project, {
        // The machine's own keys and channels stay out of it.
        TEMPO_PRIVATE_KEY: '',
        TEMPO_HOME: join(work, 'tempo-home'),
      })
      return stdout
    })
    if (output !== expected)
      throw new Error(
        `The quick start printed:\n${output}\nbut README.md's \`<!-- check: output -->\` block says:\n${expected}`,
      )
    return { output, timings }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

const bin = (name: string) => join(root, 'node_modules/.bin', name)

async function run(
  file: string,
  args: readonly string[],
  cwd: string,
  env: Record<string, string> = {},
) {
  try {
    return await promisify(execFile)(file, args, {
      cwd,
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
      env: {
        ...process.env,
        npm_config_prefer_offline: 'true',
        npm_config_audit: 'false',
        npm_config_fund: 'false',
        npm_config_update_notifier: 'false',
        ...env,
      },
    })
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
    throw new Error(`\`${[file, ...args].join(' ')}\` failed in ${cwd}:\n${stdout}${stderr}`)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const readme = process.argv[2] === undefined ? undefined : resolve(process.argv[2])
  await consumerCheck({ readme })
}
