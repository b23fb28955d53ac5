import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'

const src = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')

/** Every module specifier that `entry` reaches through relative imports, itself included. */
function importGraph(entry: string) {
  const seen = new Set<string>()
  const specifiers = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const text = readFileSync(file, 'utf8')
    for (const [, specifier] of text.matchAll(/^(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)) {
      if (!specifier) continue
      if (specifier.startsWith('.'))
        visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')))
      else specifiers.add(specifier)
    }
  }
  visit(resolve(src, entry))
  return { files: [...seen], specifiers: [...specifiers] }
}

describe('package entries', () => {
  test("'viem-mpp' is browser-safe: no node: imports anywhere below it", () => {
    const { files, specifiers } = importGraph('index.ts')
    expect(files.length).toBeGreaterThan(5)
    expect(specifiers.filter((specifier) => specifier.startsWith('node:'))).toEqual([])
    expect(files.some((file) => file.includes('/testing/'))).toBe(false)
    // Node's default provider is loaded lazily, by a specifier bundlers do not follow.
    expect(files.some((file) => file.includes('/node/'))).toBe(false)
  })

  test.each(['providers/charge.ts', 'providers/multi.ts', 'providers/PaymentProvider.ts'])(
    'imports flow one way: %s never reaches the flow or the transport',
    (provider) => {
      for (const file of importGraph(provider).files)
        expect(file).not.toMatch(/\/flow\/|mppHttp\.ts$/)
    },
  )
})
