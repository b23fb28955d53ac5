/**
 * An idle client holds nothing: once its calls have ended (paid, refused or failed, on the 402 or
 * the pre-send path), no timer or listener of the payment flow is left. A file of its own: it
 * counts the process's timers, which another test's would disturb.
 */
import { describe, expect, test } from 'vitest'
import { PaymentFailedError } from '../../src/index.js'
import { fakeProvider } from '../support/fakePayments.js'
import { useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'
import {
  call,
  clientFor,
  type Refusal,
  refusals,
  scriptedServer,
} from '../support/scriptedServer.js'

const serve = useFakeServers()

describe('an idle client holds nothing', () => {
  /** The kinds of resources that keep the process alive, counted by kind. */
  const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length

  test.each([
    { path: 'the 402 path', presend: false },
    { path: 'the pre-send path', presend: true },
  ])('$path: after paid calls, no timer is left', async ({ presend }) => {
    const server = await scriptedServer(serve)
    const { provider } = fakeProvider({ reuse: presend })
    const client = clientFor(server.url, { provider })
    const before = timers()
    for (let i = 0; i < 3; i++) await call(client, i)
    // A rejected, recovered one too.
    server.script.push(refusals['410 fresh'] as Refusal)
    await call(client, 10).catch(() => {})
    // At most as many as before: a timer an earlier test left (a closing socket's) may end meanwhile.
    expect(timers()).toBeLessThanOrEqual(before)
  })

  test('a paid call that failed leaves no timer either', async () => {
    const server = await scriptedServer(serve)
    server.script.push(refusals['402 plain, no challenge'] as Refusal)
    const { provider } = fakeProvider({ bearer: true })
    const client = clientFor(server.url, { provider })
    const before = timers()
    expect(await rejectionOf(call(client, 1))).toBeInstanceOf(PaymentFailedError)
    expect(timers()).toBeLessThanOrEqual(before)
  })
})
