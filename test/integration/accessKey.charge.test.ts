import { type Address, getAddress, parseEventLogs, TimeoutError } from 'viem'
import { generatePrivateKey } from 'viem/accounts'
import { Account } from 'viem/tempo'
import { beforeAll, expect, test, vi } from 'vitest'
import { charge, PaymentFailedError } from '../../src/index.js'
import type { Localnet } from '../../src/testing/index.js'
import {
  authorizedKey as authorizedKeyOf,
  chainReader,
  fillLoggingChainClient,
  fundedRoot as fundedRootOf,
  keyMetadata,
  recordingPaidClient,
  remainingLimit,
} from '../support/accessKeys.js'
import { noPayments } from '../support/counters.js'
import { tip20, useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'

const localnet = useLocalnet()
const { balanceOf } = localnet
let net: Localnet
beforeAll(() => {
  net = localnet.net
})

const zeroAddress = '0x0000000000000000000000000000000000000000'
/** What every root wallet here starts with, in pathUSD base units. */
const funding = 1_000_000n

/** A client on the localnet itself (never the paid endpoint), for reading the truth. */
const plain = () => chainReader(net)

const now = () => Math.floor(Date.now() / 1000)

const fundedRoot = () => fundedRootOf(net, funding)
const authorizedKey = (root: Account.RootAccount, limits: { expiry: number; limit: bigint }) =>
  authorizedKeyOf(net, root, limits)

const metadataOf = (root: Address, accessKey: Address) => keyMetadata(net, root, accessKey)

/** A paid client on `url` paying charges with `account`, and its chain client's log of fills. */
function paidClient(url: string, account: Parameters<typeof charge>[0]['account']) {
  const chain = fillLoggingChainClient(net)
  const paid = recordingPaidClient(net, url, charge({ account, client: chain.client }))
  return { ...paid, fills: chain.fills }
}

test('an access key with a key authorization pays from the root wallet; its first payment provisions it', async () => {
  const price = 1_000n
  const limit = 500_000n
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price })
  const root = await fundedRoot()
  const expiry = now() + 3600
  const key = await authorizedKey(root, { expiry, limit })
  const { account } = key
  expect(account.address).toBe(root.address)
  expect(getAddress(account.accessKeyAddress)).toBe(key.address)
  expect((await metadataOf(root.address, key.address)).address).toBe(zeroAddress)
  const payeeBefore = await balanceOf(rpc.payee)
  const { client, fills, sent, receipts } = paidClient(rpc.url, account)

  expect(await client.getChainId()).toBe(1337)
  // The first payment carried the authorization: the key is on chain now, as authorized.
  expect(await metadataOf(root.address, key.address)).toEqual({
    address: key.address,
    keyType: 'secp256k1',
    expiry: BigInt(expiry),
    spendPolicy: 'limited',
    isRevoked: false,
  })
  const watched = net.accounts[6]!.address
  expect(await client.getBalance({ address: watched })).toBe(
    await plain().getBalance({ address: watched }),
  )
  expect(await client.getBlockNumber()).toBeGreaterThan(0n)

  expect(rpc.counters).toEqual({
    requests: 6,
    challenges: 3,
    forwarded: 3,
    notifications: 0,
    payments: { ...noPayments, charge: 3 },
  })
  expect(sent).toHaveLength(3)
  expect((await balanceOf(rpc.payee)) - payeeBefore).toBe(3n * price)
  // The authorization was attached to the first payment only: once it was accepted, the key was
  // known to be provisioned, and later fills left it out.
  expect(fills).toEqual([
    { keyAuthorization: true, refused: false },
    { keyAuthorization: false, refused: false },
    { keyAuthorization: false, refused: false },
  ])

  // The root wallet paid everything (the prices and the fees, in pathUSD); the key holds nothing.
  const spent = funding - (await balanceOf(root.address))
  expect(spent).toBeGreaterThan(3n * price)
  expect(await balanceOf(key.address)).toBe(0n)
  // Everything the root wallet spent through the key, fees included, counts against its limit.
  const remaining = await remainingLimit(net, root.address, key.address)
  expect(remaining).toBe(limit - spent)

  expect(receipts).toHaveLength(3)
  expect(new Set(receipts).size).toBe(3)
  for (const [i, hash] of receipts.entries()) {
    const mined = await plain().getTransactionReceipt({ hash })
    expect(mined.status).toBe('success')
    expect(mined.from).toBe(root.address.toLowerCase())
    const transfers = parseEventLogs({ abi: tip20, logs: mined.logs, eventName: 'Transfer' })
    const paid = transfers.filter((log) => log.args.to === rpc.payee)
    expect(paid.map(({ address, args }) => [address, args.from, args.amount])).toEqual([
      [net.currency, root.address, price],
    ])
    // Signed by the access key for the root wallet; the authorization rode on the first only.
    const transaction = (await plain().getTransaction({ hash })) as unknown as {
      from: Address
      keyAuthorization?: { address: Address } | null
      signature: { type: string; userAddress?: Address }
    }
    expect(transaction.from).toBe(root.address.toLowerCase())
    expect(transaction.signature.type).toBe('keychain')
    expect(transaction.signature.userAddress?.toLowerCase()).toBe(root.address.toLowerCase())
    expect(transaction.keyAuthorization?.address.toLowerCase()).toBe(
      i === 0 ? key.address.toLowerCase() : undefined,
    )
  }
})

/** The server's answer when its own broadcast of the credential's transaction timed out. */
const internalPaymentError = {
  type: 'https://paymentauth.org/problems/internal-payment-error',
  title: 'Internal Payment Error',
  status: 500,
  detail: 'An internal payment error occurred.',
}

/**
 * Pays one call with `account`, which the localnet never mines a transaction of: mppx's server
 * simulates the transaction (`eth_call` checks neither the key nor its limits), broadcasts it with
 * `eth_sendRawTransactionSync`, gives up after viem's 10 s and answers 500. The transport sends
 * one credential, and reports the payment as possibly taken.
 */
async function expectUnminedPayment(
  rpc: Awaited<ReturnType<typeof localnet.startPaidRpc>>,
  account: Parameters<typeof charge>[0]['account'],
) {
  const root = account.address
  const payeeBefore = await balanceOf(rpc.payee)
  const { client, fills, sent, rejected, receipts } = paidClient(rpc.url, account)
  // mppx logs the error behind its 500 (silenced here, and checked).
  const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
  let calls: unknown[][]
  let error: Error
  try {
    error = await rejectionOf(client.getChainId())
  } finally {
    calls = [...logged.mock.calls]
    logged.mockRestore()
  }

  expect(calls).toHaveLength(1)
  const [label, cause] = calls[0] as [string, TimeoutError]
  expect(label).toBe('mppx: internal verification error')
  expect(cause).toBeInstanceOf(TimeoutError)
  expect(cause.message).toContain('"method":"eth_sendRawTransactionSync"')
  expect(error).toBeInstanceOf(PaymentFailedError)
  const failed = error as PaymentFailedError
  expect(failed.shortMessage).toBe('The server answered 500 to the paid request.')
  expect(failed.status).toBe(500)
  expect(failed.settled).toBe(true)
  expect(failed.problem).toEqual({ ...internalPaymentError, challengeId: expect.any(String) })
  // It names the fresh challenge sent with the answer, not the one paid.
  expect(failed.problem?.challengeId).not.toBe(sent[0]?.challenge.id)
  expect(failed.message).toContain('The payment may have been taken; it will not be made again.')
  expect(sent).toHaveLength(1)
  // Not a rejection (402/410): the server failed after taking the credential.
  expect(rejected).toEqual([])
  expect(receipts).toEqual([])
  // One unpaid probe, one credential; mppx counts its 500 among its challenges.
  expect(rpc.counters).toEqual({
    requests: 2,
    challenges: 2,
    forwarded: 0,
    notifications: 0,
    payments: noPayments,
  })
  expect(await balanceOf(rpc.payee)).toBe(payeeBefore)
  // Nothing was mined: the root wallet paid neither the price nor a fee.
  expect(await balanceOf(root)).toBe(funding)
  return { fills }
}

test('an access key without a key authorization that is not on chain: the server answers 500', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'charge', price: 1_000n })
  const root = await fundedRoot()
  const privateKey = generatePrivateKey()
  const account = Account.fromSecp256k1(privateKey, { access: root })
  const { fills } = await expectUnminedPayment(rpc, account)
  expect(fills).toEqual([{ keyAuthorization: false, refused: false }])
  expect((await metadataOf(root.address, getAddress(account.accessKeyAddress))).address).toBe(
    zeroAddress,
  )
})
