import type { Browser } from 'playwright-core'
import { afterAll, beforeAll } from 'vitest'
import { type StartDappOptions, startDapp } from '../../examples/dapp/start.js'
import { type Localnet, startLocalnet } from '../../src/testing/index.js'
import { type FoundChromium, launch } from './browser.js'

/**
 * The dApp for a browser test file: a localnet, the dApp served on it (`options`) and a Chromium,
 * started before the file's tests (when Chromium was found) and stopped after them.
 */
export function useDapp(chromiumFound: FoundChromium, options: Omit<StartDappOptions, 'net'>) {
  let net: Localnet | undefined
  let browser: Browser | undefined
  let dapp: Awaited<ReturnType<typeof startDapp>> | undefined
  beforeAll(async () => {
    if ('missing' in chromiumFound) return
    net = await startLocalnet()
    dapp = await startDapp({ net, ...options })
    browser = await launch(chromiumFound.executablePath)
  })
  afterAll(async () => {
    await browser?.close()
    await dapp?.stop()
    await net?.stop()
  })
  const started = <value>(value: value | undefined) => {
    if (value === undefined) throw new Error('the dApp has not started')
    return value
  }
  return {
    get net() {
      return started(net)
    },
    get browser() {
      return started(browser)
    },
    get dapp() {
      return started(dapp)
    },
  }
}
