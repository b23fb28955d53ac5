import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import { commandsOf, markedBlock, readmeBlocks } from '../../scripts/readme.js'
import { checkDocuments, checkSnippets } from '../../scripts/snippets.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** The README and the docs/ pages, as the checks read them. */
const documents = ['README.md', ...readdirSync(join(root, 'docs')).map((page) => `docs/${page}`)]
  .filter((name) => name.endsWith('.md'))
  .map((name) => ({ name, markdown: readFileSync(join(root, name), 'utf8') }))

test('every ts block of README.md and docs/ type-checks (free names: scripts/snippets.ts preamble)', () => {
  const blocks = documents.flatMap(({ markdown }) => readmeBlocks(markdown))
  expect(blocks.filter(({ lang }) => lang === 'ts').length).toBeGreaterThan(5)
  expect(checkDocuments(documents, { root })).toEqual([])
})

test('every link between README.md and docs/ leads to a page and a heading that exist', () => {
  const slug = (heading: string) =>
    heading
      .replace(/^#+\s*/, '')
      .toLowerCase()
      .replace(/[^\w\- ]/g, '')
      .replace(/ /g, '-')
  const anchors = new Map(
    documents.map(({ name, markdown }) => [
      name,
      new Set(
        markdown
          .split('\n')
          .filter((line) => /^#{1,6} /.test(line))
          .map(slug),
      ),
    ]),
  )
  const broken = documents.flatMap(({ name, markdown }) =>
    [...markdown.matchAll(/\]\(([^)\s]+)\)/g)]
      .map(([, target]) => target!)
      .filter((target) => !/^[a-z]+:/.test(target))
      .filter((target) => {
        const [path, anchor] = target.split('#')
        const file = path ? join(dirname(name), path) : name
        if (!existsSync(join(root, file))) return true
        return anchor !== undefined && anchors.has(file) && !anchors.get(file)!.has(anchor)
      })
      .map((target) => `${name}: ${target}`),
  )
  expect(broken).toEqual([])
  expect(readFileSync(join(root, 'README.md'), 'utf8').split('\n').length).toBeLessThanOrEqual(300)
})

const fixture = [
  '# A README', // 1
  '', // 2
  '```ts', // 3
  "import { mppHttp } from 'viem-mpp'", // 4
  'const transport = mppHttp(url) // `url` comes from the preamble', // 5
  'await client.getBlockNumber()', // 6
  '```', // 7
  '', // 8
  '- in a list:', // 9
  '  ```typescript', // 10
  "  const count: number = 'one'", // 11
  '  ```', // 12
  '', // 13
  '```ts', // 14
  "const client = 'a block may declare a preamble name'", // 15
  'const length: number = client.length', // 16
  '```', // 17
  '', // 18
  '````ts', // 19
  '/* a shorter fence does not close it:', // 20
  '```', // 21
  '*/ const fence = "```"', // 22
  'fence.toFixed()', // 23
  '````', // 24
  '', // 25
  '```sh', // 26
  "const notTypeScript: number = 'ignored'", // 27
  '```', // 28
  '', // 29
  '```ts', // 30
  "import { notExported } from 'viem-mpp'", // 31
  'notDeclared()', // 32
  '```', // 33
].join('\n')

test('type errors are reported at their README line and column, in ts blocks only', () => {
  expect(checkSnippets(fixture, { name: 'FIXTURE.md', root })).toEqual([
    "FIXTURE.md:11:7: Type 'string' is not assignable to type 'number'.",
    "FIXTURE.md:23:7: Property 'toFixed' does not exist on type '\"```\"'. Did you mean 'fixed'?",
    "FIXTURE.md:31:10: Module '\"viem-mpp\"' has no exported member 'notExported'.",
    "FIXTURE.md:32:1: Cannot find name 'notDeclared'.",
  ])
})

test('markers name the install, quick start and output blocks', () => {
  const markdown = [
    '<!-- check: install -->',
    '```sh',
    'npm pkg set overrides.mppx=0.11.0   # while the registry has no mppx 0.17',
    '',
    '# a comment line',
    'npm install viem-mpp viem',
    '```',
    '<!-- check: quickstart -->',
    '```ts',
    "console.log('hi')",
    '```',
    '<!-- check: output -->',
    '```text',
    'hi',
    '```',
    '<!-- check: install -->',
    '',
    '```sh',
    'not marked: a blank line stands between',
    '```',
  ].join('\n')
  const blocks = readmeBlocks(markdown)
  expect(blocks.map(({ lang, line, marker }) => ({ lang, line, marker }))).toEqual([
    { lang: 'sh', line: 3, marker: 'install' },
    { lang: 'ts', line: 10, marker: 'quickstart' },
    { lang: 'text', line: 14, marker: 'output' },
    { lang: 'sh', line: 19, marker: undefined },
  ])
  expect(commandsOf(markedBlock(blocks, 'install', 'sh'))).toEqual([
    'npm pkg set overrides.mppx=0.11.0',
    'npm install viem-mpp viem',
  ])
  expect(markedBlock(blocks, 'output', 'text').code).toBe('hi\n')
  expect(() => markedBlock(blocks, 'quickstart', 'sh')).toThrow(
    'The `<!-- check: quickstart -->` block (line 10) must be a `sh` block, not `ts`.',
  )
  expect(() => markedBlock([...blocks, ...blocks], 'install', 'sh')).toThrow(
    'README.md must have exactly one `<!-- check: install -->` block (found 2).',
  )
  expect(() => markedBlock([], 'install', 'sh')).toThrow('(found 0)')
})
