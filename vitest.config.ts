import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))

export default defineConfig({
  resolve: {
    // The package's own entries, from source (the transport imports `viem-mpp/node` lazily).
    alias: [
      { find: /^viem-mpp\/node$/, replacement: src('node/index.ts') },
      { find: /^viem-mpp\/testing$/, replacement: src('testing/index.ts') },
      { find: /^viem-mpp$/, replacement: src('index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Keys of the machine running the tests must not leak into them.
    env: { TEMPO_PRIVATE_KEY: '', TEMPO_HOME: '/nonexistent/viem-mpp-test-tempo-home' },
    benchmark: { include: ['bench/**/*.bench.ts'] },
  },
})
