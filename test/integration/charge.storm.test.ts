import { createPublicClient, http, numberToHex } from 'viem'
import { expect, test } from 'vitest'
import { charge } from '../../src/index.js'
import { tip20, useLocalnet } from '../support/localnet.js'
import { startProxy } from '../support/proxy.js'
import { sessionHelpers } from '../support/sessions.js'
import { faultStorm, runCalls } from '../support/storm.js'

/**
 * A fault storm of charges: 300 paid calls, 20 at a time, through a proxy that hits about one
 * paid request in ten with a fault (the connection reset before the server sees it, or after it
 * answered; a 502 after it accepted; a 402 saying the challenge expired, which it had not; an
 * answer slower than `paymentTimeout`). Every call ends, paid or with a typed error; no call pays
 * twice; and the chain shows exactly the payments the server took, each a credential the client
 * sent once.
 */
const localnet = useLocalnet()
const { accountOf, chainClient, paidClient, blockNumber } = sessionHelpers(localnet)

const calls = 300
/** Long enough for a charge (a transaction the server waits for) under load; `slow` is past it. */
const paymentTimeout = 8_000

test('300 charges, 20 at a time, ~10% faults: every call ends typed, none pays twice, the chain shows exactly what the server took', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge' })
  const account = accountOf(7)
  const from = await blockNumber()
  const before = await localnet.balanceOf(rpc.payee)
  const storm = faultStorm({
    faults: ['dropBefore', 'dropAfter', 'badGateway', 'expired', 'slow'],
    slowerThan: paymentTimeout,
  })
  const { dealt } = storm
  const proxy = await startProxy(rpc.url, storm.hook)
  try {
    const provider = charge({ account, client: chainClient() })
    /** How many credentials each call sent (a transport per call, to tell them apart). */
    const sentPerCall: number[] = []
    const clientFor = (call: number) =>
      paidClient(proxy.url, {
        provider,
        paymentTimeout,
        retryCount: 0,
        onPaymentSent: () => {
          sentPerCall[call] = (sentPerCall[call] ?? 0) + 1
        },
      })
    const { ok, failed, failures } = await runCalls(calls, 20, (index) =>
      clientFor(index).getBalance({ address: numberToHex(index, { size: 20 }) }),
    )
    const sent = sentPerCall.reduce((sum, n) => sum + (n ?? 0), 0)

    // What the chain shows: every transfer from the payer to the payee since the storm began.
    const chain = createPublicClient({
      chain: localnet.net.chain,
      transport: http(localnet.net.rpcUrl),
    })
    const transfers = await chain.getContractEvents({
      address: localnet.net.currency,
      abi: tip20,
      eventName: 'Transfer',
      args: { from: account.address, to: rpc.payee },
      fromBlock: from,
    })
    const gained = (await localnet.balanceOf(rpc.payee)) - before
    console.log(
      `[charge storm] seed ${storm.seed}: ${ok} paid, failures ${JSON.stringify(failures)}, faults ${JSON.stringify(dealt)}; ${sent} credentials sent, ${rpc.counters.payments.charge} accepted by the server, ${transfers.length} transfers on chain (${gained} base units to the payee)`,
    )
    expect(Object.keys(failures).filter((name) => name.startsWith('untyped'))).toEqual([])
    expect(ok + failed).toBe(calls)
    expect(ok).toBeGreaterThan(calls / 2)
    // No call paid twice: a call sends one credential at most (a bearer payment is not made again
    // on the server's word that its challenge expired).
    expect(sentPerCall.filter((count) => count > 1)).toEqual([])
    // The chain shows exactly what the server took: one transfer of the price per payment it
    // accepted, every call that succeeded among them, and nothing the client did not send.
    expect(transfers.length).toBe(rpc.counters.payments.charge)
    expect(transfers.every(({ args }) => args.amount === rpc.price)).toBe(true)
    expect(gained).toBe(BigInt(transfers.length) * rpc.price)
    expect(transfers.length).toBeGreaterThanOrEqual(ok)
    expect(transfers.length).toBeLessThanOrEqual(sent)
    // Those the server took that the client saw fail are the faults after it accepted.
    expect(transfers.length - ok).toBeLessThanOrEqual(
      dealt.dropAfter + dealt.badGateway + dealt.slow,
    )
  } finally {
    await proxy.stop()
  }
}, 240_000)
