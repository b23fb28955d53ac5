import { createPublicClient, http } from 'viem'
import { expect, test } from 'vitest'
import {
  charge,
  PaymentFailedError,
  PaymentRefusedError,
  PaymentRequiredError,
} from '../../src/index.js'
import { tip20, useLocalnet } from '../support/localnet.js'
import { type PaidHook, startProxy } from '../support/proxy.js'
import { seededRandom } from '../support/random.js'
import { sessionHelpers } from '../support/sessions.js'

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

type Fault = 'dropBefore' | 'dropAfter' | 'badGateway' | 'expired' | 'slow'
const faults: readonly Fault[] = ['dropBefore', 'dropAfter', 'badGateway', 'expired', 'slow']
const calls = 300
/** Long enough for a charge (a transaction the server waits for) under load; `slow` is past it. */
const paymentTimeout = 8_000

test('300 charges, 20 at a time, ~10% faults: every call ends typed, none pays twice, the chain shows exactly what the server took', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge' })
  const account = accountOf(7)
  const from = await blockNumber()
  const before = await localnet.balanceOf(rpc.payee)
  const seed = Number(process.env.STORM_SEED ?? Date.now() % 1_000_000)
  const random = seededRandom(seed)
  const dealt: Record<Fault, number> = {
    dropBefore: 0,
    dropAfter: 0,
    badGateway: 0,
    expired: 0,
    slow: 0,
  }
  const hook: PaidHook = async (_, forward) => {
    if (random() >= 0.1) return forward()
    const fault = faults[Math.floor(random() * faults.length)]!
    dealt[fault]++
    switch (fault) {
      case 'dropBefore':
        return 'drop'
      case 'dropAfter':
        await (await forward()).text()
        return 'drop'
      case 'badGateway':
        await (await forward()).text()
        return new Response('bad gateway', { status: 502 })
      case 'expired':
        return Response.json(
          { type: 'https://paymentauth.org/problems/payment-expired', detail: 'expired' },
          { status: 402, headers: { 'content-type': 'application/problem+json' } },
        )
      case 'slow': {
        const answer = await forward()
        await new Promise((resolve) => setTimeout(resolve, paymentTimeout + 500))
        return answer
      }
    }
  }
  const proxy = await startProxy(rpc.url, hook)
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
    let next = 0
    let ok = 0
    const failures = new Map<string, number>()
    const worker = async () => {
      while (next < calls) {
        const id = ++next
        try {
          await clientFor(id).getBalance({ address: `0x${id.toString(16).padStart(40, '0')}` })
          ok++
        } catch (error) {
          const typed =
            error instanceof PaymentFailedError ||
            error instanceof PaymentRefusedError ||
            error instanceof PaymentRequiredError
          const name = typed
            ? `${(error as Error).name}: ${(error as { shortMessage?: string }).shortMessage}`
            : `untyped: ${(error as Error).message}`
          failures.set(name, (failures.get(name) ?? 0) + 1)
        }
      }
    }
    await Promise.all(Array.from({ length: 20 }, worker))
    const failed = [...failures.values()].reduce((sum, n) => sum + n, 0)
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
      `[charge storm] seed ${seed}: ${ok} paid, failures ${JSON.stringify(Object.fromEntries(failures))}, faults ${JSON.stringify(dealt)}; ${sent} credentials sent, ${rpc.counters.payments.charge} accepted by the server, ${transfers.length} transfers on chain (${gained} base units to the payee)`,
    )
    expect([...failures.keys()].filter((name) => name.startsWith('untyped'))).toEqual([])
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
