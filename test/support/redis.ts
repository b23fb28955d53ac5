import { execFileSync } from 'node:child_process'

/**
 * Whether a Redis server can be run here; tests that need one run when it can, or when CI
 * requires it (`VIEM_MPP_REQUIRE_TOOLS=1`, where .ci/run installs redis-server and a missing one
 * must fail them). Otherwise `file` says in one line that it was not run, and why.
 *
 * @example
 * ```ts
 * describe.runIf(redisAvailable('redisStore.test.ts'))('redisChannelStore', () => { … })
 * ```
 */
export function redisAvailable(file: string): boolean {
  const installed = [process.env.REDIS_SERVER, 'redis-server', 'valkey-server'].some((binary) => {
    if (!binary) return false
    try {
      execFileSync('/bin/sh', ['-c', `command -v "${binary}"`], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  })
  if (installed || process.env.VIEM_MPP_REQUIRE_TOOLS === '1') return true
  console.info(`${file}: not run — no redis-server (apt-get install redis-server).`)
  return false
}
