import { existsSync } from 'node:fs'
import { type Browser, chromium } from 'playwright-core'
import { test } from 'vitest'

/**
 * A headless Chromium for the real-browser tests, found without Playwright's downloader (which
 * cannot reach its CDN here): `CHROMIUM_PATH`, else a system Chromium or Chrome, else the one the
 * `@sparticuz/chromium` devDependency ships inside its npm package (it starts on Debian with no
 * system package beyond the base libraries: libnss3, libexpat1). Each is launched once to check
 * that it really starts.
 */
export type FoundChromium =
  | { executablePath: string; source: string }
  /** None starts: why, in one line. */
  | { missing: string }

const systemPaths = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
]

/** Flags for a browser in a container: no sandbox (root), no background traffic, small /dev/shm. */
const chromiumArgs = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
]

let found: Promise<FoundChromium> | undefined

/** The first Chromium that starts (looked for once per test file). */
export function findChromium(): Promise<FoundChromium> {
  found ??= (async () => {
    const tried: string[] = []
    const candidates: (() => Promise<{ executablePath: string; source: string } | undefined>)[] = [
      async () => {
        const path = process.env.CHROMIUM_PATH
        if (!path) return undefined
        if (!existsSync(path)) {
          tried.push(`CHROMIUM_PATH=${path} does not exist`)
          return undefined
        }
        return { executablePath: path, source: 'CHROMIUM_PATH' }
      },
      ...systemPaths.map((path) => async () => {
        if (!existsSync(path)) return undefined
        return { executablePath: path, source: 'the system' }
      }),
      async () => {
        const { default: packaged } = await import('@sparticuz/chromium')
        return { executablePath: await packaged.executablePath(), source: '@sparticuz/chromium' }
      },
    ]
    for (const candidate of candidates) {
      const chosen = await candidate().catch((error: unknown) => {
        tried.push(`@sparticuz/chromium: ${(error as Error).message.split('\n')[0]}`)
        return undefined
      })
      if (!chosen) continue
      const started = await launch(chosen.executablePath).then(
        (browser) => browser.close().then(() => true),
        (error: unknown) => {
          tried.push(`${chosen.executablePath}: ${(error as Error).message.split('\n')[0]}`)
          return false
        },
      )
      if (started) {
        console.log(`[browser tests] Chromium from ${chosen.source}: ${chosen.executablePath}`)
        return chosen
      }
    }
    return {
      missing: `no Chromium starts (${tried.join('; ') || 'none found'}): set CHROMIUM_PATH, or \`apt-get install -y chromium\``,
    }
  })()
  return found
}

/** Launches the Chromium at `executablePath`, headless. */
export function launch(executablePath: string): Promise<Browser> {
  return chromium.launch({ executablePath, args: chromiumArgs })
}

/**
 * `test` when a Chromium starts; otherwise `test.skip`, with one printed line saying why and how
 * to fix it. Under `VIEM_MPP_REQUIRE_BROWSER=1` (set by `.ci/run`) a missing browser fails the
 * file instead.
 *
 * @example
 * ```ts
 * const browserFound = await findChromium()
 * const browserTest = withBrowser(browserFound)
 * browserTest('the page pays', async () => {})
 * ```
 */
export function withBrowser(chromiumFound: FoundChromium) {
  if (!('missing' in chromiumFound)) return test
  if (process.env.VIEM_MPP_REQUIRE_BROWSER === '1')
    throw new Error(`The real-browser tests need a browser: ${chromiumFound.missing}.`)
  console.log(`[browser tests skipped] ${chromiumFound.missing}.`)
  return test.skip
}
