import type { Account } from 'viem'
import { Addresses } from 'viem/tempo'
import { beforeAll, describe, expect, test } from 'vitest'
import {
  PaymentFailedError,
  PaymentRefusedError,
  PaymentRequiredError,
  session,
  tempo,
} from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import { authorizedKey, fundedRoot } from '../support/accessKeys.js'
import { noPayments } from '../support/counters.js'
import { rpcResult, useFakeServers } from '../support/fakeServer.js'
import { useLocalnet } from '../support/localnet.js'
import { type PaidPayload, paidLabel, problemAnswer, startProxy } from '../support/proxy.js'
import { rejectionOf } from '../support/rejection.js'
import { deferred } from '../support/scriptedServer.js'
import { nobody, recording, sessionHelpers } from '../support/sessions.js'

const localnet = useLocalnet()
const serve = useFakeServers()
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

const { chainClient, accountOf, blockNumber, paidClient, channelEvents, sessionChallenge } =
  sessionHelpers(localnet)

describe('session challenges that are not paid', () => {
  test('v1, no protocol, other chain, other escrow, no escrow: each listed with why, nothing signed', async () => {
    const chainId = net.chain.id
    const reserve = Addresses.tip20ChannelReserve
    const header = [
      { chainId, escrowContract: reserve, sessionProtocol: 'v1' },
      { chainId, escrowContract: reserve },
      { chainId: 4242, escrowContract: reserve, sessionProtocol: 'v2' },
      {
        chainId,
        escrowContract: '0x1111111111111111111111111111111111111111',
        sessionProtocol: 'v2',
      },
      { chainId, sessionProtocol: 'v2' },
    ]
      .map((methodDetails) => sessionChallenge({ methodDetails }))
      .join(', ')
    const server = await serve((request, response) => {
      if (request.authorization) return response.writeHead(200).end(rpcResult(request.body))
      response.writeHead(402, { 'www-authenticate': header }).end()
    })
    const { account, signed } = recording(accountOf(0))
    const provider = session({ account, client: chainClient() })

    const error = await rejectionOf(paidClient(server.url, { provider }).getChainId())
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('noSupportedChallenge')
    expect((error as PaymentRequiredError).metaMessages).toEqual([
      `Endpoint: ${server.url}`,
      'Offered:',
      '  tempo/session: session protocol "v1" (only "v2" is paid)',
      '  tempo/session: no sessionProtocol (only TIP-1034 sessions, "v2", are paid)',
      `  tempo/session: chain 4242, not the viem client's chain ${chainId}`,
      `  tempo/session: escrow 0x1111111111111111111111111111111111111111 is not the canonical TIP-1034 channel reserve (${reserve})`,
      '  tempo/session: no escrowContract',
    ])
    expect(signed).toEqual([])
    expect(server.paid()).toEqual([])
    expect(server.requests).toHaveLength(1)
  })
})

describe('session faults', () => {
  test('an open rejected (invalid-challenge) that the server still broadcasts a second later: waited for, no second channel', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const account = accountOf(7)
    const broadcasts: Promise<unknown>[] = []
    const proxy = await startProxy(rpc.url, async (payload, forward) => {
      if (payload.action !== 'open') return forward()
      // The open goes through a second later (its answer lost), after a refusal now.
      broadcasts.push(
        new Promise((resolve) => setTimeout(resolve, 1_000)).then(() =>
          forward().then((answer) => answer.body?.cancel()),
        ),
      )
      return problemAnswer(402, {
        type: 'https://paymentauth.org/problems/invalid-challenge',
        detail: 'refused',
      })
    })
    try {
      const client = paidClient(proxy.url, {
        provider: session({ account, client: chainClient() }),
      })
      // The refused open may still land: the call's fresh challenge waits for the chain to
      // decide, then pays on the channel that landed.
      for (let i = 0; i < 4; i++) expect(await client.getChainId()).toBe(net.chain.id)
      await Promise.all(broadcasts)
      const opened = await channelEvents('ChannelOpened', account.address, from)
      expect(opened).toHaveLength(1)
      expect(rpc.counters.payments.open).toBe(1)
      // The server holds exactly what it charged (the open's call, served to nobody, and the four).
      const channelId = opened[0]!.args.channelId as `0x${string}`
      const held = await rpc.channel(channelId)
      expect(held).toMatchObject({ units: 5, highestVoucher: 5000n, spent: 5000n })
    } finally {
      await proxy.stop()
    }
  })

  test.each([
    ['the connection drops', 1, () => 'drop' as const],
    ['a 502 comes back', 6, () => new Response('bad gateway', { status: 502 })],
  ])(
    'the answer to the open is lost (%s): the next call finds the channel on chain, no second open',
    async (_, index, lose) => {
      const rpc = await localnet.startPaidRpc({ intent: 'session' })
      const from = await blockNumber()
      const payer = accountOf(index).address
      const proxy = await startProxy(rpc.url, async (payload, forward) => {
        const answer = await forward()
        if (payload.action !== 'open') return answer
        await answer.body?.cancel()
        return lose()
      })
      try {
        const client = paidClient(proxy.url, {
          provider: session({ account: accountOf(index), client: chainClient() }),
        })
        const lost = await rejectionOf(client.getChainId())
        expect(lost).toBeInstanceOf(PaymentFailedError)
        expect((lost as PaymentFailedError).settled).toBe(true)

        expect(await client.getChainId()).toBe(net.chain.id)
        expect(await client.getChainId()).toBe(net.chain.id)
        expect(await channelEvents('ChannelOpened', payer, from)).toHaveLength(1)
        expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 2 })
      } finally {
        await proxy.stop()
      }
    },
  )

  test('vouchers delivered out of order: the late one is paid from the higher voucher the server holds, no gap, no chain work', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const payer = accountOf(2).address
    const seen: PaidPayload[] = []
    const higherAnswered = deferred()
    const proxy = await startProxy(rpc.url, async (payload, forward) => {
      seen.push(payload)
      // The lower voucher arrives only after the higher one was accepted.
      if (payload.cumulativeAmount === '2000') await higherAnswered.promise
      const answer = await forward()
      if (payload.cumulativeAmount === '3000') higherAnswered.resolve()
      return answer
    })
    try {
      const client = paidClient(proxy.url, {
        provider: session({ account: accountOf(2), client: chainClient() }),
      })
      await client.getChainId()
      const balances = await Promise.all([
        client.getBalance({ address: nobody }),
        client.getBalance({ address: payer }),
      ])
      expect(balances).toHaveLength(2)
      expect(seen.map(paidLabel)).toEqual([
        'open 1000',
        'voucher 2000',
        'voucher 3000',
        'voucher 3000',
      ])
      // Three calls served, and the highest voucher the payee holds is exactly their price.
      const [opened] = await channelEvents('ChannelOpened', payer, from)
      expect(await rpc.channel(opened!.args.channelId)).toMatchObject({
        highestVoucher: 3_000n,
        spent: 3_000n,
        units: 3,
      })
      expect(await channelEvents('ChannelOpened', payer, from)).toHaveLength(1)
      expect(await channelEvents('TopUp', payer, from)).toHaveLength(0)
      expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 2 })
    } finally {
      await proxy.stop()
    }
  })

  test('a channel spent up to maxDeposit is set aside and a new one opened; close() ends both', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session' })
    const from = await blockNumber()
    const payer = accountOf(3).address
    const provider = session({ account: accountOf(3), client: chainClient(), maxDeposit: 2_000n })
    const client = paidClient(rpc.url, { provider })
    await client.getChainId()
    await client.getChainId()
    // The third voucher would need 3 000 in a channel that may hold 2 000: a new channel pays it.
    await client.getChainId()
    expect(
      (await channelEvents('ChannelOpened', payer, from)).map((log) => log.args.deposit),
    ).toEqual([2_000n, 2_000n])
    expect(await channelEvents('TopUp', payer, from)).toHaveLength(0)
    // 402 + open, then each call carried its payment (the new channel's open included).
    expect(rpc.counters.requests).toBe(4)
    expect(rpc.counters.payments).toMatchObject({ open: 2, voucher: 1 })
    const closed = await provider.close()
    expect(closed.map(({ settled, refunded }) => [settled, refunded])).toEqual([
      [2_000n, 0n],
      [1_000n, 1_000n],
    ])
  })

  test('a price above maxDeposit: PaymentRefusedError maxDeposit, nothing signed', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session', price: 3_000n })
    const client = paidClient(rpc.url, {
      provider: session({ account: accountOf(3), client: chainClient(), maxDeposit: 2_000n }),
    })
    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('maxDeposit')
    expect(rpc.counters.requests).toBe(1)
  })
})

describe('tempo()', () => {
  test('pays a session where the server offers one, else a charge', async () => {
    const both = await localnet.startPaidRpc({ intent: ['charge', 'session'] })
    const provider = tempo({ account: accountOf(4), client: chainClient() })
    const client = paidClient(both.url, { provider })
    await client.getChainId()
    await client.getChainId()
    expect(both.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 1 })
    // The second call carried its voucher before the server asked.
    expect(both.counters.requests).toBe(3)
    expect(await provider.close()).toMatchObject([{ settled: 2_000n }])
    await both.stop()

    const charges = await localnet.startPaidRpc({ intent: 'charge' })
    await paidClient(charges.url, { provider }).getChainId()
    expect(charges.counters.payments).toEqual({ ...noPayments, charge: 1 })
  })
})

describe('access keys', () => {
  test('the channel is signed for by the access key: vouchers and top-ups need no root signature', async () => {
    const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
    const from = await blockNumber()
    const root = await fundedRoot(net, 1_000_000n)
    const { address: keyAddress, account } = await authorizedKey(net, root, {
      expiry: Math.floor(Date.now() / 1000) + 3600,
      limit: 1_000_000n,
    })
    const provider = session({ account: account as Account, client: chainClient() })
    const client = paidClient(rpc.url, { provider })
    for (let i = 0; i < 3; i++) await client.getChainId()

    const [opened] = await channelEvents('ChannelOpened', root.address, from)
    expect(opened!.args.authorizedSigner).toBe(keyAddress)
    // The key also signs the top-up, which it can now that the open provisioned it.
    const topUps = await channelEvents('TopUp', root.address, from)
    expect(topUps.map(({ args }) => args.newDeposit)).toEqual([4_000n])
    expect(rpc.counters.payments).toEqual({ ...noPayments, open: 1, voucher: 2, topUp: 1 })
    expect(await provider.close()).toMatchObject([
      { channelId: opened!.args.channelId, settled: 3_000n, refunded: 1_000n },
    ])
  })
})
