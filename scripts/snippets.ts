/**
 * Type-checks every `ts` code block of the README and docs/, each as a module of its own, with the repo's
 * compiler options (`viem-mpp`, `viem-mpp/node` and `viem-mpp/testing` resolve to `src/` through
 * tsconfig.json's `paths`) and nothing written to disk.
 *
 * A block is a complete module, except that it may use the free names of {@link preamble}
 * (`account`, `url`, `client`, `chainClient`, `error`; the types `Address` and `Hex`) without
 * declaring them; a block's own declaration of one of them takes precedence.
 *
 *   npx tsx scripts/snippets.ts [README.md docs/*.md]
 */
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { readmeBlocks } from './readme.js'

/**
 * The free names a README block may use, as globals (a block's own declarations shadow them):
 * what a reader has in hand by then.
 */
export const preamble = `import type { Address as ViemAddress, Hex as ViemHex, LocalAccount, PublicClient } from 'viem'
declare global {
  /** The account that pays: a local account or a viem/tempo access-key account. */
  const account: LocalAccount
  /** The paid endpoint's URL. */
  const url: string
  /** A viem client whose transport is mppHttp. */
  const client: PublicClient
  /** A viem client on the chain's own, unpaid RPC (to prepare payments with). */
  const chainClient: PublicClient
  /** What a call threw. */
  const error: unknown
  type Address = ViemAddress
  type Hex = ViemHex
}
export {}
`

/** Each type error of the `ts` blocks of `markdown`, as `name:line:column: message`. */
export function checkSnippets(
  markdown: string,
  { name = 'README.md', root = process.cwd() }: { name?: string; root?: string } = {},
): string[] {
  return checkDocuments([{ name, markdown }], { root })
}

/**
 * Each type error of the `ts` blocks of several Markdown documents (the README and docs/), as
 * `name:line:column: message`: one program for all of them, each block a module of its own.
 */
export function checkDocuments(
  documents: readonly { name: string; markdown: string }[],
  { root = process.cwd() }: { root?: string } = {},
): string[] {
  const { options } = ts.parseJsonConfigFileContent(
    ts.readConfigFile(join(root, 'tsconfig.json'), ts.sys.readFile).config,
    ts.sys,
    root,
  )
  // Virtual files in a folder of the repo that does not exist, so that packages resolve from
  // the repo's node_modules.
  const folder = join(root, '.readme-snippets')
  const files = new Map<string, { text: string; line: number; name: string }>([
    [join(folder, 'preamble.ts'), { text: preamble, line: 0, name: 'preamble' }],
  ])
  for (const [index, { name, markdown }] of documents.entries())
    for (const block of readmeBlocks(markdown))
      if (block.lang === 'ts' || block.lang === 'typescript')
        // `export {}` makes a block without imports a module too, so its names stay its own.
        files.set(join(folder, `${index}-line-${block.line}.ts`), {
          text: `${block.code}export {}\n`,
          line: block.line,
          name,
        })

  const host = ts.createCompilerHost({ ...options, noEmit: true })
  const { fileExists, readFile, getSourceFile } = host
  host.fileExists = (path) => files.has(resolve(path)) || fileExists(path)
  host.readFile = (path) => files.get(resolve(path))?.text ?? readFile(path)
  host.getSourceFile = (path, language, ...rest) => {
    const file = files.get(resolve(path))
    return file
      ? ts.createSourceFile(path, file.text, language, true)
      : getSourceFile(path, language, ...rest)
  }
  const program = ts.createProgram({
    rootNames: [...files.keys()],
    options: { ...options, noEmit: true },
    host,
  })
  // The snippets' own errors: those of src/ are the typecheck's to report.
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...[...files.keys()].flatMap((path) => {
      const file = program.getSourceFile(path)
      return file
        ? [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]
        : []
    }),
  ]
  return diagnostics.map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
    const { file, start } = diagnostic
    const block = file && files.get(resolve(file.fileName))
    if (!file || !block || start === undefined) return message
    const { line, character } = file.getLineAndCharacterOfPosition(start)
    if (block.line === 0) return `scripts/snippets.ts (preamble):${line + 1}: ${message}`
    return `${block.name}:${block.line + line}:${character + 1}: ${message}`
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const paths = process.argv.length > 2 ? process.argv.slice(2) : ['README.md']
  const errors = checkDocuments(
    paths.map((path) => ({ name: path, markdown: readFileSync(resolve(path), 'utf8') })),
  )
  for (const error of errors) console.error(error)
  process.exitCode = errors.length ? 1 : 0
}
