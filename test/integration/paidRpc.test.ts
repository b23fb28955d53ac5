import { Challenge, Credential, Receipt } from 'mppx'
import { Mppx, sessionManager, tempo } from 'mppx/client'
import { createClient, type Hex, http, publicActions } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { Abis } from 'viem/tempo'
import { beforeAll, describe, expect, test } from 'vitest'
import { type Localnet, PaidRpcStartError, startPaidRpc } from '../../src/testing/index.js'
import { challengedOnce, noPayments } from '../support/counters.js'
import { useLocalnet } from '../support/localnet.js'

const pathUsd = '0x20c0000000000000000000000000000000000000'
const reserveAddress = '0x4d50500000000000000000000000000000000000'
const problems = 'https://paymentauth.org/problems'
const localnet = useLocalnet()
const { balanceOf } = localnet
let net: Localnet
beforeAll(() => {
  net = localnet.net
})
const start = localnet.startPaidRpc

/** A viem client on the localnet itself (never the paid endpoint), for paying and for reading. */
function chainClient(index: number) {
  const account = privateKeyToAccount(net.accounts[index]!.privateKey)
  return createClient({ account, chain: net.chain, transport: http(net.rpcUrl) }).extend(
    publicActions,
  )
}

const call = (id: number, method = 'eth_chainId') =>
  JSON.stringify({ jsonrpc: '2.0', id, method, params: [] })

const post = (body: string, headers: Record<string, string> = {}) =>
  ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body }) as const

/** A `fetch` that records the `Authorization` header of every request it sends. */
function recordingFetch() {
  const authorizations: (string | null)[] = []
  const fetchFn: typeof globalThis.fetch = (input, init) => {
    const headers = new Headers(input instanceof Request ? input.headers : undefined)
    new Headers(init?.headers).forEach((value, key) => {
      headers.set(key, value)
    })
    authorizations.push(headers.get('authorization'))
    return globalThis.fetch(input, init)
  }
  return { fetch: fetchFn, authorizations }
}

function sessionClient(index: number, fetchFn?: typeof globalThis.fetch) {
  const client = chainClient(index)
  return sessionManager({
    account: client.account,
    getClient: () => client,
    maxDeposit: '10',
    ...(fetchFn ? { fetch: fetchFn } : {}),
  })
}

async function reserveEvents(channelId: Hex) {
  const client = chainClient(0)
  const query = { address: reserveAddress, abi: Abis.tip20ChannelReserve, fromBlock: 0n } as const
  const [opened, closed] = await Promise.all([
    client.getContractEvents({ ...query, eventName: 'ChannelOpened', args: { channelId } }),
    client.getContractEvents({ ...query, eventName: 'ChannelClosed', args: { channelId } }),
  ])
  return { opened, closed }
}

describe('402 challenges', () => {
  test('an unpaid POST gets one charge challenge by default', async () => {
    const rpc = await start()
    const response = await fetch(rpc.url, post(call(1)))
    expect(response.status).toBe(402)
    expect(response.headers.get('www-authenticate')).toMatch(/^Payment /)
    expect(response.headers.get('content-type')).toContain('application/problem+json')
    expect(((await response.clone().json()) as { type: string }).type).toBe(
      `${problems}/payment-required`,
    )

    const challenges = Challenge.fromResponseList(response)
    expect(challenges).toHaveLength(1)
    const [challenge] = challenges
    expect(challenge?.method).toBe('tempo')
    expect(challenge?.intent).toBe('charge')
    expect(challenge?.request).toMatchObject({
      amount: '1000',
      currency: pathUsd,
      recipient: rpc.payee,
      methodDetails: { chainId: 1337 },
    })
    expect(rpc.price).toBe(1000n)
    expect(rpc.counters).toEqual(challengedOnce)
  })

  test("intent ['session', 'charge'] offers both, in that order", async () => {
    const rpc = await start({ intent: ['session', 'charge'] })
    const response = await fetch(rpc.url, post(call(1)))
    expect(response.status).toBe(402)
    const challenges = Challenge.fromResponseList(response)
    expect(challenges.map(({ method, intent }) => `${method}/${intent}`)).toEqual([
      'tempo/session',
      'tempo/charge',
    ])
    const [session, charge] = challenges
    expect(session?.request).toMatchObject({
      amount: '1000',
      currency: pathUsd,
      recipient: rpc.payee,
      unitType: 'request',
      suggestedDeposit: '1000000',
      methodDetails: { chainId: 1337, escrowContract: reserveAddress, sessionProtocol: 'v2' },
    })
    expect(charge?.request).toMatchObject({
      amount: '1000',
      currency: pathUsd,
      recipient: rpc.payee,
      methodDetails: { chainId: 1337 },
    })
  })
})

describe('charge, paid by mppx', () => {
  function payer(index: number) {
    const client = chainClient(index)
    return Mppx.create({
      polyfill: false,
      methods: [tempo.charge({ account: client.account, getClient: () => client })],
    })
  }

  test('each POST is paid once, forwarded, and receipted with a mined transfer', async () => {
    const rpc = await start({ price: 2_500n })
    expect(rpc.price).toBe(2_500n)
    const mppx = payer(1)
    const before = await balanceOf(rpc.payee)

    const references: string[] = []
    for (const id of [1, 2]) {
      const response = await mppx.fetch(rpc.url, post(call(id)))
      expect(response.status).toBe(200)
      expect(await response.clone().json()).toEqual({ jsonrpc: '2.0', id, result: '0x539' })
      const receipt = Receipt.fromResponse(response)
      expect(receipt.method).toBe('tempo')
      expect(receipt.status).toBe('success')
      expect(receipt.reference).toMatch(/^0x[0-9a-f]{64}$/)
      const mined = await chainClient(0).getTransactionReceipt({
        hash: receipt.reference as Hex,
      })
      expect(mined.status).toBe('success')
      expect(mined.from.toLowerCase()).toBe(net.accounts[1]!.address.toLowerCase())
      references.push(receipt.reference)
    }
    expect(new Set(references).size).toBe(2)

    expect((await balanceOf(rpc.payee)) - before).toBe(2n * rpc.price)
    expect(rpc.counters).toEqual({
      requests: 4, // each paid POST: one 402 probe, one paid retry
      challenges: 2,
      forwarded: 2,
      notifications: 0,
      payments: { charge: 2, open: 0, voucher: 0, topUp: 0, close: 0 },
    })
  })

  test('a JSON-RPC batch costs one payment and gets every result', async () => {
    const rpc = await start()
    const before = await balanceOf(rpc.payee)
    const batch = `[${call(1)},${call(2, 'net_version')},${call(3)}]`
    const response = await payer(2).fetch(rpc.url, post(batch))
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual([
      { jsonrpc: '2.0', id: 1, result: '0x539' },
      { jsonrpc: '2.0', id: 2, result: '1337' },
      { jsonrpc: '2.0', id: 3, result: '0x539' },
    ])
    expect((await balanceOf(rpc.payee)) - before).toBe(rpc.price)
    expect(rpc.counters.payments.charge).toBe(1)
    expect(rpc.counters.forwarded).toBe(1)
  })
})

describe('session, paid by mppx', () => {
  test('open, two vouchers, close settles exactly what was spent; a replay is gone', async () => {
    const rpc = await start({ intent: 'session' })
    const recorder = recordingFetch()
    const manager = sessionClient(3, recorder.fetch)

    for (const id of [1, 2, 3]) {
      const response = await manager.fetch(rpc.url, post(call(id)))
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ jsonrpc: '2.0', id, result: '0x539' })
    }
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 2 })
    expect(rpc.counters.forwarded).toBe(3)
    const channelId = manager.channelId as Hex
    expect(channelId).toMatch(/^0x[0-9a-f]{64}$/)

    const lastVoucher = recorder.authorizations.at(-1)
    expect(lastVoucher).toMatch(/^Payment /)
    expect(Credential.deserialize(lastVoucher!).payload).toMatchObject({
      action: 'voucher',
      channelId,
      cumulativeAmount: String(3n * rpc.price),
    })

    const closed = await manager.close()
    expect(closed).toMatchObject({
      method: 'tempo',
      intent: 'session',
      status: 'success',
      channelId,
      acceptedCumulative: String(3n * rpc.price),
      spent: String(3n * rpc.price),
    })
    expect(rpc.counters.payments.close).toBe(1)

    const events = await reserveEvents(channelId)
    expect(events.opened).toHaveLength(1)
    expect(events.closed).toHaveLength(1)
    const deposit = events.opened[0]!.args.deposit!
    expect(deposit).toBe(1000n * rpc.price) // the suggested deposit, under maxDeposit
    expect(events.opened[0]!.args.payer).toBe(net.accounts[3]!.address)
    expect(events.opened[0]!.args.payee).toBe(rpc.payee)
    expect(events.closed[0]!.args.settledToPayee).toBe(3n * rpc.price)
    expect(events.closed[0]!.args.refundedToPayer).toBe(deposit - 3n * rpc.price)
    expect(events.closed[0]!.transactionHash).toBe(closed!.txHash)

    const forwarded = rpc.counters.forwarded
    const replay = await fetch(rpc.url, post(call(4), { authorization: lastVoucher! }))
    expect(replay.status).toBe(410)
    expect(replay.headers.get('content-type')).toContain('application/problem+json')
    expect(((await replay.json()) as { type: string }).type).toBe(
      `${problems}/session/channel-finalized`,
    )
    expect(rpc.counters.forwarded).toBe(forwarded)
  })

  test('after forgetChannel, the next voucher is answered 410 channel-not-found', async () => {
    const rpc = await start({ intent: 'session' })
    const manager = sessionClient(4)
    const first = await manager.fetch(rpc.url, post(call(1)))
    expect(first.status).toBe(200)
    expect(rpc.counters.payments.open).toBe(1)
    const channelId = manager.channelId as Hex

    await rpc.forgetChannel(channelId)
    const forwarded = rpc.counters.forwarded
    const second = await manager.fetch(rpc.url, post(call(2)))
    expect(second.status).toBe(410)
    expect(((await second.json()) as { type: string }).type).toBe(
      `${problems}/session/channel-not-found`,
    )
    expect(rpc.counters.forwarded).toBe(forwarded)
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1 })
  })
})

test('an upstream with credentials in its URL is reached with them as Basic auth', async () => {
  const upstream = new URL(net.rpcUrl)
  upstream.username = 'user'
  upstream.password = 'secret'
  const rpc = await startPaidRpc({ upstream: upstream.href, chain: net.chain })
  await rpc.stop()
})

test('an upstream that does not answer is refused at start, without leaking its secrets', async () => {
  const upstream = 'http://user:secret@127.0.0.1:1/path?apikey=secret'
  const error = await startPaidRpc({ upstream, chain: net.chain }).then(
    () => undefined,
    (error: unknown) => error as PaidRpcStartError,
  )
  expect(error).toBeInstanceOf(PaidRpcStartError)
  expect(error?.name).toBe('PaidRpcStartError')
  expect(error?.shortMessage).toBe('The upstream at http://127.0.0.1:1 does not answer JSON-RPC.')
  expect(error?.message).toContain('does not answer')
  expect(error?.message).toContain(
    'Start the node first (e.g. `startLocalnet()`), or check `upstream`.',
  )
  for (let cause: unknown = error; cause instanceof Error; cause = cause.cause)
    expect(cause.message).not.toContain('secret')
})
