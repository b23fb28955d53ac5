import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BaseError as ViemBaseError } from 'viem'
import {
  InvalidPaymentTimeoutError,
  PaymentFailedError,
  PaymentRefusedError,
  PaymentRequiredError,
} from 'viem-mpp'
import { expect, test } from 'vitest'
import { version } from '../../src/version.js'

const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))

test('src/version.ts says the version package.json says', () => {
  expect(version).toBe(manifest.version)
})

test("errors name viem-mpp's version, not viem's, and stay viem errors", () => {
  const errors = [
    new PaymentRequiredError({ reason: 'noChallenge', origin: 'https://rpc.example' }),
    new PaymentRefusedError({ reason: 'budget', amount: 5n, currency: '0xtoken', limit: 4n }),
    new PaymentFailedError({
      shortMessage: 'Rejected.',
      origin: 'https://rpc.example',
      settled: false,
    }),
    new InvalidPaymentTimeoutError({ paymentTimeout: -1 }),
  ]
  for (const error of errors) {
    expect(error).toBeInstanceOf(ViemBaseError)
    expect(error.version).toBe(`viem-mpp@${manifest.version}`)
    const lines = error.message.split('\n')
    expect(lines.at(-1)).toBe(`Version: viem-mpp@${manifest.version}`)
    expect(lines.filter((line) => line.startsWith('Version:'))).toHaveLength(1)
  }
})

test("a viem error's cause keeps viem's version to itself", () => {
  const cause = new ViemBaseError('Upstream failed.')
  const error = new PaymentFailedError({
    shortMessage: 'Rejected.',
    origin: 'https://rpc.example',
    settled: true,
    cause,
  })
  expect(cause.message.split('\n').at(-1)).toMatch(/^Version: viem@\d+\.\d+\.\d+$/)
  expect(error.message).not.toContain('viem@')
  expect(error.message.split('\n').at(-1)).toBe(`Version: viem-mpp@${manifest.version}`)
})

test("every error class of the package extends viem-mpp's BaseError (src/errors/base.ts), not viem's", () => {
  const src = new URL('../../src/', import.meta.url)
  const viemBaseError = /import\s*\{[^}]*\bBaseError\b[^}]*\}\s*from\s*'viem'/
  const offenders = readdirSync(src, { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.ts') && path !== join('errors', 'base.ts'))
    .filter((path) => {
      const text = readFileSync(new URL(path, src), 'utf8')
      return viemBaseError.test(text) && /\bextends BaseError\b/.test(text)
    })
  expect(offenders).toEqual([])
})
