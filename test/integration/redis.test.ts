/**
 * `startRedis()` (viem-mpp/testing): a loopback redis-server (or valkey-server) for the fleet
 * tests and users' own, from the system. Without one, these tests say so in one line; in CI
 * (`VIEM_MPP_REQUIRE_TOOLS=1`, where .ci/run installs redis-server) a missing one fails them.
 */
import { connect } from 'node:net'
import { describe, expect, test } from 'vitest'
import { RedisStartError, startRedis } from '../../src/testing/index.js'
import { redisAvailable } from '../support/redis.js'
import { rejectionOf } from '../support/rejection.js'

/** Sends `PING` and resolves with the server's answer (`+PONG`), or rejects. */
function ping(port: number) {
  return new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
    socket.once('data', (data) => {
      resolve(data.toString().trim())
      socket.end()
    })
    socket.once('error', reject)
  })
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe.runIf(redisAvailable('redis.test.ts'))('startRedis', () => {
  test('a server on a free loopback port that answers, stopped by stop()', async () => {
    const redis = await startRedis()
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`)
    expect(await ping(redis.port)).toBe('+PONG')
    await redis.stop()
    await redis.stop()
    expect(alive(redis.pid)).toBe(false)
    await expect(ping(redis.port)).rejects.toThrow(/ECONNREFUSED/)
  })

  test('a port taken: RedisStartError, and nothing left running', async () => {
    const first = await startRedis()
    try {
      const error = await rejectionOf(startRedis({ port: first.port }))
      expect(error).toBeInstanceOf(RedisStartError)
      expect((error as RedisStartError).shortMessage).toMatch(
        /exited \(code \d+\) before accepting connections/,
      )
    } finally {
      await first.stop()
    }
  })
})

test('no such binary: RedisStartError naming how to install one', async () => {
  const error = await rejectionOf(startRedis({ binary: '/nonexistent/redis-server' }))
  expect(error).toBeInstanceOf(RedisStartError)
  expect((error as RedisStartError).shortMessage).toBe(
    'No Redis server found (/nonexistent/redis-server).',
  )
  expect(error.message).toContain('apt-get install redis-server')
})
