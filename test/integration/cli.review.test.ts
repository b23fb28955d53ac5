import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { linesOf, runCli } from '../support/cli.js'
import { useLocalnet } from '../support/localnet.js'

const localnet = useLocalnet()

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'viem-mpp-cli-review-'))
})
afterEach(() => rm(dir, { recursive: true, force: true }))

const unknownId = `0x${'11'.repeat(32)}`

test.each([
  ['withdraw', [unknownId]],
  ['close', [unknownId, '--url', 'http://127.0.0.1:9/']],
])(
  'channels %s on a store that does not exist: one-line error, no file or directory created',
  async (command, args) => {
    const storePath = join(dir, 'missing', 'channels.db')
    const { privateKey } = localnet.net.accounts[0] ?? {}
    const run = await runCli(
      ['channels', command, ...args, '--store', storePath, '--rpc-url', localnet.net.rpcUrl],
      { TEMPO_PRIVATE_KEY: privateKey },
    )
    expect(run.code).toBe(1)
    expect(linesOf(run.stderr)).toHaveLength(1)
    expect(run.stderr).toContain(unknownId)
    expect(existsSync(join(dir, 'missing'))).toBe(false)
  },
)
