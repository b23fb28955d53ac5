import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  // Inside the viem-mpp repository, `viem-mpp` resolves to its source through tsconfig.json's
  // `paths`; in your project it is the installed package, and this line changes nothing.
  resolve: { tsconfigPaths: true },
  test: {
    root: fileURLToPath(new URL('.', import.meta.url)),
    include: ['**/*.test.ts'],
    // A localnet starts in about a second; a payment is a transaction or two on it.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
