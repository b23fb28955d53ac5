import { Challenge } from 'mppx'
import { describe, expect, test } from 'vitest'
import { rankByAcceptPayment } from '../../src/AcceptPayment.js'

const offer = (method: string, intent: string) =>
  Challenge.from({ id: `${method}/${intent}`, realm: 'r', method, intent, request: {} })
const offers = [offer('tempo', 'charge'), offer('stripe', 'charge'), offer('tempo', 'session')]
const ids = (value: string | undefined) =>
  rankByAcceptPayment(offers, value).map((challenge) => challenge.id)

describe('rankByAcceptPayment', () => {
  test.each([
    [undefined, ['tempo/charge', 'stripe/charge', 'tempo/session']],
    ['tempo/session, tempo/charge;q=0.5', ['tempo/session', 'tempo/charge']],
    ['tempo/*, stripe/charge;q=0.6', ['tempo/charge', 'tempo/session', 'stripe/charge']],
    ['*/charge;q=0.3, tempo/session', ['tempo/session', 'tempo/charge', 'stripe/charge']],
    ['tempo/*, tempo/charge;q=0', ['tempo/session']],
    ['*/*', ['tempo/charge', 'stripe/charge', 'tempo/session']],
    ['TEMPO/Session', ['tempo/session']],
    ['not a range', ['tempo/charge', 'stripe/charge', 'tempo/session']],
    ['tempo/charge;q=2', ['tempo/charge', 'stripe/charge', 'tempo/session']],
  ])('%s', (value, expected) => {
    expect(ids(value)).toEqual(expected)
  })
})
