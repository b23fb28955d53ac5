/**
 * The unpaid path: `mppHttp()` against viem's `http()`, side by side in one run. Both send through
 * the same in-memory `fetchFn` (a JSON-RPC answer, no socket), so the figures show what each
 * transport itself costs. With no 402, mppHttp should cost about the same as http(): `npm run bench`
 * then prints each group's rate ratio (bench/ratio.ts); the goal is at least 0.97.
 */
import { createClient, http } from 'viem'
import { bench, describe } from 'vitest'
import { mppHttp } from '../src/index.js'
import { fakeProvider } from '../test/support/fakePayments.js'
import { rpcResult } from '../test/support/fakeServer.js'

const url = 'http://rpc.bench.invalid'
const fetchFn = async (_input: unknown, init?: RequestInit) =>
  new Response(rpcResult(String(init?.body), '0x1234'), {
    headers: { 'content-type': 'application/json' },
  })
const options = { time: 3_000, warmupTime: 1_000 }

describe('one call, no 402', () => {
  const plain = createClient({ transport: http(url, { fetchFn }) })
  const paid = createClient({
    transport: mppHttp(url, { fetchFn, provider: fakeProvider().provider }),
  })
  bench('http()', () => plain.request({ method: 'eth_blockNumber' }).then(() => {}), options)
  bench('mppHttp()', () => paid.request({ method: 'eth_blockNumber' }).then(() => {}), options)
})

describe('a batch of 20 calls, no 402', () => {
  const plain = createClient({ transport: http(url, { fetchFn, batch: true }) })
  const paid = createClient({
    transport: mppHttp(url, { fetchFn, batch: true, provider: fakeProvider().provider }),
  })
  const calls = (client: typeof plain) =>
    Promise.all(Array.from({ length: 20 }, () => client.request({ method: 'eth_blockNumber' })))
  bench('http()', () => calls(plain).then(() => {}), options)
  bench('mppHttp()', () => calls(paid).then(() => {}), options)
})
