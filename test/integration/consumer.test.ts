/**
 * viem-mpp installed as a newcomer would: `npm pack`, a fresh project outside the repository,
 * README.md's install commands as written, its quick start type-checked with `tsc --init`'s
 * settings and run against a localnet (scripts/consumer-check.ts).
 */
import { expect, test } from 'vitest'
import { consumerCheck, installArguments } from '../../scripts/consumer-check.js'

test("README.md's install and quick start work in a fresh project, from the packed tarball", async () => {
  const steps: string[] = []
  const { timings } = await consumerCheck({ log: (line) => steps.push(line) })
  expect(Object.keys(timings)).toEqual([
    'npm pack',
    'manifest',
    'publint',
    'attw',
    'npm install (README)',
    'tsc (quick start)',
    'quick start',
  ])
  console.log(steps.join('\n'))
}, 180_000)

test('install commands are npm commands with viem-mpp replaced by the tarball', () => {
  expect(installArguments('npm install viem-mpp viem', '/tmp/x/viem-mpp-0.1.0.tgz')).toEqual([
    'install',
    '/tmp/x/viem-mpp-0.1.0.tgz',
    'viem',
  ])
  expect(installArguments('npm i -D viem-mpp@0.1.0', '/t.tgz')).toEqual(['i', '-D', '/t.tgz'])
  // Only the package itself is replaced, not a package whose name starts the same.
  expect(installArguments('npm install viem-mpp-extra', '/t.tgz')).toEqual([
    'install',
    'viem-mpp-extra',
  ])
  expect(installArguments('npm pkg set overrides.mppx=0.11.0', '/t.tgz')).toEqual([
    'pkg',
    'set',
    'overrides.mppx=0.11.0',
  ])
})

test('an install command that is not plain npm is refused, not run', () => {
  for (const command of [
    'npm install viem-mpp; rm -rf ~',
    'npm install $(whoami)',
    'npm install viem-mpp && curl example.com',
    "npm pkg set 'overrides.mppx=0.11.0'",
    'npm install `id`',
  ])
    expect(() => installArguments(command, '/t.tgz')).toThrow(
      `An install command must be plain words, without shell syntax: ${command}`,
    )
  expect(() => installArguments('yarn add viem-mpp', '/t.tgz')).toThrow(
    'An install command must run npm: yarn add viem-mpp',
  )
})
