import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, test } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

test('examples/script/payForRpc.ts pays twice and reads the chain', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'examples/script/payForRpc.ts'],
    { cwd: root, timeout: 60_000 },
  )
  const lines = stdout.trim().split('\n')
  expect(
    lines.filter((line) => /^paid 0\.001 pathUSD, transaction 0x[0-9a-f]{64}$/.test(line)),
  ).toHaveLength(2)
  expect(lines).toContain('chain id: 1337')
  expect(lines.at(-1)).toBe('spent: 0.002 pathUSD in 2 payments')
})
