/**
 * The shape of the source tree: imports flow one way, from the entries down through the
 * transports, the payment flow, the providers, channel management, the TIP-1034 reserve and the
 * stores to the base (errors, shared internals), and no module imports one that imports it back
 * (type-only and lazy imports included: a circle of types is a circle of concepts). Modules and
 * functions stay small enough to read whole: one concept a module, one step a function. Every
 * package the source imports is one the package depends on: never one that is only there because
 * another dependency brought it.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'
import { expect, test } from 'vitest'

const root = resolve(import.meta.dirname, '../../src')

/** The most lines a module may have. */
const moduleLines = 400
/** The most lines a function may have, from its first line to its closing brace. */
const functionLines = 120

/** Top to bottom: a module may import its own layer's and lower layers' modules only. */
const layers = [
  ['index.ts', 'node/', 'cli/', 'testing/'],
  ['mppHttp.ts', 'mppWebSocket.ts', 'http/', 'webSocket/'],
  ['flow/'],
  ['providers/', 'keys/'],
  ['channels/'],
  ['reserve/'],
  ['stores/'],
  ['errors.ts', 'errors/', 'Problem.ts', 'AcceptPayment.ts', 'version.ts', 'internal/'],
]

const modules = (readdirSync(root, { recursive: true }) as string[])
  .filter((file) => file.endsWith('.ts'))
  .map((file) => file.split('\\').join('/'))

/**
 * Every relative import of a module (static, type-only, re-export or lazy) of another module (not
 * of data: JSON), as module paths.
 */
function importsOf(module: string): string[] {
  return specifiersOf(module)
    .filter((specifier) => /^\.{1,2}\//.test(specifier) && specifier.endsWith('.js'))
    .map((specifier) =>
      relative(root, resolve(dirname(join(root, module)), specifier)).replace(/\.js$/, '.ts'),
    )
}

/** What a module imports (static, type-only, re-export or lazy), as written. */
function specifiersOf(module: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(join(root, module), 'utf8'), true, true)
  return importedFiles.map(({ fileName }) => fileName)
}

const graph = new Map(modules.map((module) => [module, importsOf(module)]))

function layerOf(module: string) {
  const layer = layers.findIndex((members) =>
    members.some((member) =>
      member.endsWith('/') ? module.startsWith(member) : module === member,
    ),
  )
  if (layer < 0) throw new Error(`${module} is in no layer: add it to the list above`)
  return layer
}

test('every module is in a layer and imports only modules that exist', () => {
  for (const [module, imports] of graph) {
    layerOf(module)
    for (const imported of imports)
      expect(graph.has(imported), `${module} → ${imported}`).toBe(true)
  }
})

test('no import goes up a layer', () => {
  const upward = [...graph].flatMap(([module, imports]) =>
    imports
      .filter((imported) => layerOf(imported) < layerOf(module))
      .map((imported) => `${module} → ${imported}`),
  )
  expect(upward).toEqual([])
})

test('every package imported is a dependency or a peer dependency', () => {
  const manifest = JSON.parse(readFileSync(join(root, '../package.json'), 'utf8'))
  const declared = new Set(Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }))
  const undeclared = modules.flatMap((module) =>
    specifiersOf(module)
      .filter((specifier) => !/^(\.{1,2}\/|node:)/.test(specifier))
      // A package's name: its first path segment, or its first two when scoped.
      .map((specifier) =>
        specifier
          .split('/')
          .slice(0, specifier.startsWith('@') ? 2 : 1)
          .join('/'),
      )
      .filter((name) => !declared.has(name))
      .map((name) => `${module} → ${name}`),
  )
  expect(undeclared).toEqual([])
})

test('no import circle', () => {
  // Depth-first search; a module met again while still on the path closes a circle.
  const circles: string[] = []
  const done = new Set<string>()
  const visit = (module: string, path: string[]) => {
    const at = path.indexOf(module)
    if (at >= 0) return void circles.push([...path.slice(at), module].join(' → '))
    if (done.has(module)) return
    for (const imported of graph.get(module) ?? []) visit(imported, [...path, module])
    done.add(module)
  }
  for (const module of graph.keys()) visit(module, [])
  expect(circles).toEqual([])
})

test(`no module over ${moduleLines} lines, no function over ${functionLines}`, () => {
  const long: string[] = []
  for (const module of modules) {
    const text = readFileSync(join(root, module), 'utf8')
    const source = ts.createSourceFile(module, text, ts.ScriptTarget.Latest, true)
    const lines = (node: ts.Node) =>
      source.getLineAndCharacterOfPosition(node.end).line -
      source.getLineAndCharacterOfPosition(node.getStart(source)).line +
      1
    if (lines(source) > moduleLines) long.push(`${module}: ${lines(source)} lines`)
    const visit = (node: ts.Node) => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body && lines(node) > functionLines) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart(source))
        long.push(`${module}:${line + 1}: a function of ${lines(node)} lines`)
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  expect(long).toEqual([])
})
