/**
 * Selling JSON-RPC access with mppx's server: every HTTP request to this endpoint (a batch counts
 * once) costs 0.001 pathUSD, paid either with a TIP-1034 session voucher (one channel per client,
 * then a signature per request: no transaction) or with a Tempo charge (one transfer per request).
 * Paid requests are forwarded to the upstream node; payments are verified and settled on chain.
 *
 *   npm run example:sell
 *
 * starts a Tempo localnet as the upstream (and prints its RPC URL, to prepare payments with). To
 * sell your own node's access on Tempo mainnet:
 *
 *   UPSTREAM_RPC_URL=https://… PAYEE_PRIVATE_KEY=0x… MPP_SECRET_KEY=… PORT=8080 npx tsx examples/sellRpc/sellRpc.ts
 *
 * It listens on 127.0.0.1: publish it behind an HTTPS proxy, since clients send payment
 * credentials over `https://` only (or plain HTTP to their own machine). Ctrl+C (or SIGTERM)
 * stops it and prints what it earned.
 */
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Mppx, Request as MppxRequest, NodeListener, Store, tempo } from 'mppx/server'
import { type Chain, createClient, formatUnits, type Hex, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { tempo as tempoMainnet } from 'viem/chains'
import { Addresses } from 'viem/tempo'
import { type Localnet, startLocalnet } from 'viem-mpp/testing'

const price = '0.001' // per HTTP request, in pathUSD
const currency = Addresses.pathUsd
const decimals = 6

const env = process.env
const net: Localnet | undefined = env.UPSTREAM_RPC_URL ? undefined : await startLocalnet()
const upstream = net?.rpcUrl ?? env.UPSTREAM_RPC_URL ?? ''
const chain: Chain = net?.chain ?? tempoMainnet
// On the localnet, the payee is its last funded account.
const payeeKey = (env.PAYEE_PRIVATE_KEY || net?.accounts.at(-1)?.privateKey) as Hex | undefined
if (!payeeKey) throw new Error('Set PAYEE_PRIVATE_KEY: the key that receives payments.')
const payee = privateKeyToAccount(payeeKey)
// Settles and closes session channels, and checks charges, on the upstream's chain.
const client = createClient({ account: payee, chain, transport: http(upstream) })

const mppx = Mppx.create({
  // Signs the challenges, so the server keeps no state for them: keep it across restarts.
  secretKey: env.MPP_SECRET_KEY || randomBytes(32).toString('hex'),
  realm: 'paid-rpc',
  methods: [
    tempo.session({
      account: payee,
      currency,
      decimals,
      getClient: () => client,
      // What each channel has been paid so far; a real server keeps it in a durable store
      // (mppx's `Store.redis`, `Store.cloudflare`, …), or it cannot settle after a restart.
      store: Store.memory(),
      unitType: 'request',
      suggestedDeposit: '1', // what a client is asked to lock in its channel
    }),
    tempo.charge({ currency, decimals, recipient: payee.address, getClient: () => client }),
  ],
})
// Both offers in one 402, session first: clients pay with the one they prefer.
const pay = mppx.compose(['tempo/session', { amount: price }], ['tempo/charge', { amount: price }])

const earned = { session: 0n, charge: 0n }
mppx.onPaymentSuccess(({ method, credential, request }) => {
  // A session's credential says what it does: open, voucher (both pay for this request),
  // topUp or close (channel management, no request paid).
  const action = (credential?.payload as { action?: string } | undefined)?.action
  const name = `${method.name}/${method.intent}${action ? ` ${action}` : ''}`
  if (method.intent === 'session' && action !== 'open' && action !== 'voucher')
    return console.log(name)
  const amount = BigInt((request as { amount: string }).amount)
  earned[method.intent as 'session' | 'charge'] += amount
  console.log(`${name}: +${formatUnits(amount, decimals)} pathUSD`)
})

const server = createServer(async (req, res) => {
  // Browsers may call it too: they must be allowed to send the credential and read the
  // challenge and the receipt.
  res.setHeader('access-control-allow-origin', '*')
  res.setHeader('access-control-allow-headers', 'authorization, content-type')
  res.setHeader('access-control-expose-headers', 'www-authenticate, payment-receipt')
  if (req.method === 'OPTIONS') return res.writeHead(204).end()
  try {
    const request = MppxRequest.fromNodeListener(req, res)
    const result = await pay(request)
    if (result.status === 402) return await NodeListener.sendResponse(res, result.challenge)
    const management = managementResponse(result.withReceipt)
    if (management) return await NodeListener.sendResponse(res, management)
    const answer = await fetch(upstream, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: await request.text(),
    })
    const response = new Response(await answer.text(), {
      status: answer.status,
      headers: { 'content-type': 'application/json' },
    })
    await NodeListener.sendResponse(res, result.withReceipt(response))
  } catch (error) {
    console.error(`request failed: ${(error as Error).message}`)
    if (!res.headersSent) res.writeHead(502).end()
  }
})
server.listen(Number(env.PORT || 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  if (net) console.log(`localnet (unpaid, to prepare payments): ${net.rpcUrl}`)
  console.log(`selling JSON-RPC at http://127.0.0.1:${port} for ${price} pathUSD a request`)
})

/**
 * The answer mppx made itself to a session management request (opening a channel without a
 * body, a top-up, a close); `undefined` for a JSON-RPC request, which the upstream answers.
 */
function managementResponse(withReceipt: (response?: Response) => Response) {
  try {
    return withReceipt()
  } catch (error) {
    if (Mppx.isMissingReceiptResponseError(error)) return undefined
    throw error
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await net?.stop()
    console.log(
      `earned ${formatUnits(earned.session, decimals)} pathUSD in vouchers and ${formatUnits(earned.charge, decimals)} in charges`,
    )
    process.exit(0)
  })
