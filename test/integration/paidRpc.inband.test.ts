/**
 * `startPaidRpc({ signalling: 'jsonrpc' })`: the same mppx gate, signalled in-band as
 * draft-payment-transport-mcp-00 says — a `200` whose JSON-RPC error is `-32042` with the
 * challenges as objects, the credential read from the request's root-level `_meta` (or
 * `params._meta`), the receipt in the answer's root-level `_meta`, `-32043` for a credential
 * refused. Paid here by hand with mppx's own client method, on the localnet.
 */
import { Challenge, Credential } from 'mppx'
import { Mppx, tempo } from 'mppx/client'
import { createClient, http, publicActions } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { expect, test } from 'vitest'
import WebSocket from 'ws'
import { useLocalnet } from '../support/localnet.js'

const localnet = useLocalnet()

type Answer = {
  jsonrpc: '2.0'
  id: unknown
  result?: unknown
  error?: {
    code: number
    message: string
    data?: { httpStatus?: number; challenges?: Challenge.Challenge[] }
  }
  _meta?: Record<string, unknown>
}

/** POSTs a JSON-RPC body; the answer must be a 200. */
async function rpc(url: string, body: unknown): Promise<Answer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(response.status).toBe(200)
  expect(response.headers.has('www-authenticate')).toBe(false)
  return (await response.json()) as Answer
}

/** The credential mppx's own charge method makes for `challenge`, as the in-band object. */
async function credentialFor(challenge: Challenge.Challenge, index = 1) {
  const { net } = localnet
  const client = createClient({
    account: privateKeyToAccount(net.accounts[index]!.privateKey),
    chain: net.chain,
    transport: http(net.rpcUrl),
  }).extend(publicActions)
  const mppx = Mppx.create({
    polyfill: false,
    methods: [tempo.charge({ account: client.account, getClient: () => client })],
  })
  const challengeResponse = new Response(null, {
    status: 402,
    headers: { 'www-authenticate': Challenge.serialize(challenge) },
  })
  return Credential.deserialize(await mppx.createCredential(challengeResponse))
}

test('an unpaid call: -32042 in a 200, challenges as objects; paid with the credential in root-level _meta: the result and a receipt in _meta', async () => {
  const paid = await localnet.startPaidRpc({ signalling: 'jsonrpc', price: 2_000n })
  const before = await localnet.balanceOf(paid.payee)
  const call = { jsonrpc: '2.0', id: 7, method: 'eth_chainId', params: [] }

  const challenged = await rpc(paid.url, call)
  expect(challenged).toMatchObject({
    jsonrpc: '2.0',
    id: 7,
    error: { code: -32042, message: 'Payment Required', data: { httpStatus: 402 } },
  })
  const [challenge] = challenged.error?.data?.challenges ?? []
  expect(challenge).toMatchObject({
    method: 'tempo',
    intent: 'charge',
    request: { amount: '2000', recipient: paid.payee },
  })
  expect(paid.counters).toMatchObject({ requests: 1, challenges: 1, forwarded: 0 })

  const credential = await credentialFor(challenge as Challenge.Challenge)
  const answer = await rpc(paid.url, {
    ...call,
    _meta: { 'org.paymentauth/credential': credential },
  })
  expect(answer).toMatchObject({
    jsonrpc: '2.0',
    id: 7,
    result: `0x${localnet.net.chain.id.toString(16)}`,
  })
  expect(answer._meta?.['org.paymentauth/receipt']).toMatchObject({
    status: 'success',
    method: 'tempo',
    challengeId: challenge?.id,
  })
  expect((await localnet.balanceOf(paid.payee)) - before).toBe(2_000n)
  expect(paid.counters).toMatchObject({
    requests: 2,
    challenges: 1,
    forwarded: 1,
    payments: { charge: 1 },
  })

  // The same credential again: refused (a charge is paid once), as -32043 with a fresh challenge.
  const again = await rpc(paid.url, {
    ...call,
    id: 8,
    _meta: { 'org.paymentauth/credential': credential },
  })
  expect(again).toMatchObject({ id: 8, error: { code: -32043, data: { httpStatus: 402 } } })
  expect(again.error?.data?.challenges).toHaveLength(1)
  expect((await localnet.balanceOf(paid.payee)) - before).toBe(2_000n)
})

test('a credential in params._meta (MCP placement) is read too; garbage in _meta is -32043, nothing forwarded', async () => {
  const paid = await localnet.startPaidRpc({ signalling: 'jsonrpc' })
  const call = { jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: {} }
  const [challenge] = (await rpc(paid.url, call)).error?.data?.challenges ?? []
  const credential = await credentialFor(challenge as Challenge.Challenge, 2)
  const answer = await rpc(paid.url, {
    ...call,
    params: { _meta: { 'org.paymentauth/credential': credential } },
  })
  expect(answer._meta?.['org.paymentauth/receipt']).toMatchObject({ status: 'success' })

  const garbage = await rpc(paid.url, {
    ...call,
    id: 2,
    _meta: { 'org.paymentauth/credential': 'nope' },
  })
  expect(garbage).toMatchObject({ id: 2, error: { code: -32043 } })
  expect(paid.counters.forwarded).toBe(1)
})

test('a batch is one paid request: each of its calls is answered -32042; paid once, all answered', async () => {
  const paid = await localnet.startPaidRpc({ signalling: 'jsonrpc' })
  const batch = [
    { jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] },
    { jsonrpc: '2.0', id: 2, method: 'eth_blockNumber', params: [] },
  ]
  const challenged = (await rpc(paid.url, batch)) as unknown as Answer[]
  expect(challenged.map(({ id, error }) => [id, error?.code])).toEqual([
    [1, -32042],
    [2, -32042],
  ])
  const credential = await credentialFor(
    challenged[0]?.error?.data?.challenges?.[0] as Challenge.Challenge,
    3,
  )
  const [first, ...rest] = batch
  const answers = (await rpc(paid.url, [
    { ...first, _meta: { 'org.paymentauth/credential': credential } },
    ...rest,
  ])) as unknown as Answer[]
  expect(answers.map(({ id, error }) => [id, error])).toEqual([
    [1, undefined],
    [2, undefined],
  ])
  expect(answers[0]?._meta?.['org.paymentauth/receipt']).toMatchObject({ status: 'success' })
  expect(paid.counters.payments.charge).toBe(1)
})

/** A raw WebSocket client: sends a message, resolves with the next one. */
async function socketTo(url: string) {
  const socket = new WebSocket(url)
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  return {
    socket,
    ask: (body: unknown) =>
      new Promise<Answer>((resolve) => {
        socket.once('message', (data) => resolve(JSON.parse(String(data)) as Answer))
        socket.send(JSON.stringify(body))
      }),
  }
}

test("transport 'ws': -32042 on the socket, paid with the credential in _meta, the receipt in _meta; an oversized frame closes the socket", async () => {
  const paid = await localnet.startPaidRpc({ transport: 'ws', price: 1_500n })
  expect(paid.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/)
  const before = await localnet.balanceOf(paid.payee)
  const { socket, ask } = await socketTo(paid.url)
  try {
    const call = { jsonrpc: '2.0', id: 'a', method: 'eth_chainId', params: [] }
    const challenged = await ask(call)
    expect(challenged).toMatchObject({
      id: 'a',
      error: { code: -32042, data: { httpStatus: 402 } },
    })
    const credential = await credentialFor(
      challenged.error?.data?.challenges?.[0] as Challenge.Challenge,
      4,
    )
    const answer = await ask({ ...call, _meta: { 'org.paymentauth/credential': credential } })
    expect(answer).toMatchObject({ id: 'a', result: `0x${localnet.net.chain.id.toString(16)}` })
    expect(answer._meta?.['org.paymentauth/receipt']).toMatchObject({ status: 'success' })
    expect((await localnet.balanceOf(paid.payee)) - before).toBe(1_500n)
    expect(paid.counters).toMatchObject({ requests: 2, challenges: 1, forwarded: 1 })

    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)))
    socket.send('x'.repeat(2 * 1024 * 1024))
    expect(await closed).toBe(1009)
  } finally {
    socket.terminate()
  }
})
