/**
 * The localnet's chain pays transaction fees in pathUSD, as a Tempo network does: a fresh account
 * holding pathUSD only sends with viem's defaults.
 */
import {
  createClient,
  encodeFunctionData,
  type Hash,
  http,
  publicActions,
  walletActions,
} from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Actions } from 'viem/tempo'
import { expect, test } from 'vitest'
import { tip20, useLocalnet, walletClient } from '../support/localnet.js'

const localnet = useLocalnet()
const funds = 1_000_000n

/** A fresh account holding `funds` pathUSD and nothing else, with a client on the localnet. */
async function freshAccount() {
  const { net } = localnet
  const account = privateKeyToAccount(generatePrivateKey())
  const funder = walletClient(net, 4)
  await funder.waitForTransactionReceipt({
    hash: await funder.writeContract({
      address: net.currency,
      abi: tip20,
      functionName: 'transfer',
      args: [account.address, funds],
    }),
  })
  const client = createClient({ account, chain: net.chain, transport: http(net.rpcUrl) })
    .extend(publicActions)
    .extend(walletActions)
  expect(await client.getBalance({ address: account.address })).toBe(0n)
  expect(await localnet.balanceOf(account.address)).toBe(funds)
  return client
}

/**
 * Checks that the transaction was a Tempo transaction paying its fee in pathUSD, and that the
 * sender lost exactly `amount` plus that fee: gas used times the effective gas price (18 decimals
 * per gas unit), rounded up to pathUSD's 6 decimals.
 */
async function expectFeePaidInPathUsd(
  sender: Awaited<ReturnType<typeof freshAccount>>,
  hash: Hash,
  amount: bigint,
) {
  const { net } = localnet
  const [transaction, receipt] = await Promise.all([
    sender.getTransaction({ hash }),
    sender.getTransactionReceipt({ hash }),
  ])
  expect(transaction.type).toBe('tempo')
  expect((transaction as { feeToken?: string }).feeToken?.toLowerCase()).toBe(
    net.currency.toLowerCase(),
  )
  const scale = 10n ** 12n
  const fee = (receipt.gasUsed * receipt.effectiveGasPrice + scale - 1n) / scale
  expect(fee).toBeGreaterThan(0n)
  expect(await localnet.balanceOf(sender.account.address)).toBe(funds - amount - fee)
  expect(await sender.getBalance({ address: sender.account.address })).toBe(0n)
}

test('Actions.token.transferSync from a pathUSD-only account, with viem defaults', async () => {
  const { net } = localnet
  const sender = await freshAccount()
  const recipient = privateKeyToAccount(generatePrivateKey()).address

  const { receipt } = await Actions.token.transferSync(sender, {
    token: net.currency,
    to: recipient,
    amount: 1_234n,
  })

  expect(receipt.status).toBe('success')
  expect(await localnet.balanceOf(recipient)).toBe(1_234n)
  await expectFeePaidInPathUsd(sender, receipt.transactionHash, 1_234n)
})

test('sendTransactionSync with a call from a pathUSD-only account, with viem defaults', async () => {
  const { net } = localnet
  const sender = await freshAccount()
  const recipient = privateKeyToAccount(generatePrivateKey()).address

  const receipt = await sender.sendTransactionSync({
    to: net.currency,
    data: encodeFunctionData({ abi: tip20, functionName: 'transfer', args: [recipient, 4_321n] }),
  })

  expect(receipt.status).toBe('success')
  expect(await localnet.balanceOf(recipient)).toBe(4_321n)
  await expectFeePaidInPathUsd(sender, receipt.transactionHash, 4_321n)
})

test("a transaction's own feeToken takes precedence over the chain's", async () => {
  const { net } = localnet
  const alphaUsd = '0x20c0000000000000000000000000000000000001'
  const sender = walletClient(net, 5)
  const recipient = privateKeyToAccount(generatePrivateKey()).address

  const { receipt } = await Actions.token.transferSync(sender, {
    token: net.currency,
    to: recipient,
    amount: 1n,
    feeToken: alphaUsd,
  })

  const transaction = await sender.getTransaction({ hash: receipt.transactionHash })
  expect((transaction as { feeToken?: string }).feeToken?.toLowerCase()).toBe(alphaUsd)
})
