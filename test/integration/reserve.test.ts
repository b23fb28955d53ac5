import { Channel, TxEnvelopeTempo } from 'ox/tempo'
import {
  BaseError,
  ContractFunctionRevertedError,
  encodeFunctionData,
  type Hex,
  keccak256,
  type Log,
  parseEventLogs,
  parseTransaction,
  serializeTransaction,
  zeroAddress,
} from 'viem'
import { Abis, Actions, Addresses } from 'viem/tempo'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type Localnet, startLocalnet } from '../../src/testing/index.js'
import { balanceOf as balanceOfOn, walletClient } from '../support/localnet.js'

const reserve = { address: Addresses.tip20ChannelReserve, abi: Abis.tip20ChannelReserve } as const

let net: Localnet
beforeAll(async () => {
  net = await startLocalnet()
})
afterAll(() => net?.stop())

const clientFor = (index: number) => walletClient(net, index)

const balanceOf = (address: Hex) => balanceOfOn(net, address)

/** Opens a channel from `payer` to `payee` and returns its descriptor. */
async function open(payer = clientFor(1), payee = clientFor(2), deposit = 10_000n) {
  const opened = await Actions.channel.openSync(payer, {
    deposit,
    payee: payee.account.address,
    token: net.currency,
  })
  const descriptor = {
    payer: payer.account.address,
    payee: payee.account.address,
    operator: opened.operator,
    token: opened.token,
    salt: opened.salt,
    authorizedSigner: opened.authorizedSigner,
    expiringNonceHash: opened.expiringNonceHash,
  }
  return { ...opened, descriptor }
}

const voucher = (signer: ReturnType<typeof clientFor>, channelId: Hex, cumulativeAmount: bigint) =>
  Actions.channel.signVoucher(signer, { channel: channelId, cumulativeAmount })

/** The reserve error a call reverts with, decoded by viem from the reserve's ABI. */
async function revertOf(promise: Promise<unknown>) {
  const error = await promise.then(
    () => undefined,
    (error: unknown) => error,
  )
  expect(error).toBeInstanceOf(BaseError)
  const reverted = (error as BaseError).walk((e) => e instanceof ContractFunctionRevertedError)
  return (reverted as ContractFunctionRevertedError | null)?.data?.errorName
}

describe('channel reserve at the TIP-1034 address', () => {
  test('constants agree with ox', async () => {
    const client = clientFor(0)
    const read = <name extends 'CLOSE_GRACE_PERIOD' | 'VOUCHER_TYPEHASH' | 'domainSeparator'>(
      functionName: name,
    ) => client.readContract({ ...reserve, functionName })
    expect(await read('CLOSE_GRACE_PERIOD')).toBe(Channel.closeGracePeriod)
    expect(await read('VOUCHER_TYPEHASH')).toBe(Channel.voucherTypehash)
    expect(await read('domainSeparator')).toBe(Channel.domainSeparator({ chainId: net.chain.id }))
    const channelId = keccak256('0x01')
    expect(
      await client.readContract({
        ...reserve,
        functionName: 'getVoucherDigest',
        args: [channelId, 123n],
      }),
    ).toBe(
      Channel.getVoucherSignPayload({ chainId: net.chain.id, channelId, cumulativeAmount: 123n }),
    )
  })

  test.each([
    ['a Tempo transaction', 'tempo'],
    ['an EIP-1559 transaction', 'eip1559'],
  ] as const)('open in %s derives the channel id from its expiring-nonce hash', async (_, type) => {
    const payer = clientFor(1)
    const payee = clientFor(2)
    const before = await balanceOf(payer.account.address)
    const call = {
      to: reserve.address,
      data: encodeFunctionData({
        ...reserve,
        functionName: 'open',
        args: [
          payee.account.address,
          zeroAddress,
          net.currency,
          10_000n,
          keccak256('0x07'),
          zeroAddress,
        ],
      }),
    }
    const request = await payer.prepareTransactionRequest(
      // The localnet's chain pays fees in pathUSD, which makes a transaction a Tempo one.
      type === 'tempo'
        ? { calls: [call] }
        : { ...call, chain: net.chain.extend({ feeToken: undefined }) },
    )
    const raw = await payer.signTransaction(request as never)
    const receipt = await payer.sendRawTransactionSync({ serializedTransaction: raw })
    const [opened] = reserveEvents(receipt.logs).filter(
      (event) => event.eventName === 'ChannelOpened',
    )
    if (opened?.eventName !== 'ChannelOpened') throw new Error('no ChannelOpened event')

    // TIP-1034: keccak256(encodeForSigning || sender).
    const signingPayload =
      type === 'tempo'
        ? TxEnvelopeTempo.encodeForSigning(
            TxEnvelopeTempo.deserialize(raw as TxEnvelopeTempo.Serialized),
          )
        : serializeTransaction({
            ...parseTransaction(raw),
            r: undefined,
            s: undefined,
            v: undefined,
            yParity: undefined,
          } as never)
    expect(raw.slice(0, 4)).toBe(type === 'tempo' ? '0x76' : '0x02')
    const expiringNonceHash = keccak256(`${signingPayload}${payer.account.address.slice(2)}`)
    expect(opened.args.expiringNonceHash).toBe(expiringNonceHash)
    expect(opened.args.channelId).toBe(
      Channel.computeId(
        { ...opened.args, payer: payer.account.address },
        { chainId: net.chain.id },
      ),
    )
    expect(opened.args.deposit).toBe(10_000n)
    expect(
      await payer.readContract({
        ...reserve,
        functionName: 'getChannelState',
        args: [opened.args.channelId],
      }),
    ).toEqual({ settled: 0n, deposit: 10_000n, closeRequestedAt: 0 })
    // The deposit left the payer (the fee is paid in pathUSD too, so at least the deposit).
    expect(before - (await balanceOf(payer.account.address))).toBeGreaterThanOrEqual(10_000n)
  })

  test('settle pays the payee the voucher increment', async () => {
    const payer = clientFor(1)
    const payee = clientFor(2)
    const { channelId, descriptor } = await open(payer, payee)
    const { receipt } = await Actions.channel.settleSync(payee, {
      channel: descriptor,
      cumulativeAmount: 2_500n,
      signature: await voucher(payer, channelId, 2_500n),
    })
    const [settled] = reserveEvents(receipt.logs).filter((event) => event.eventName === 'Settled')
    expect(settled?.args).toMatchObject({
      cumulativeAmount: 2_500n,
      deltaPaid: 2_500n,
      newSettled: 2_500n,
    })
    expect(
      await payer.readContract({ ...reserve, functionName: 'getChannelState', args: [channelId] }),
    ).toEqual({ settled: 2_500n, deposit: 10_000n, closeRequestedAt: 0 })

    // The same voucher again, a lower one, or one beyond the deposit: refused.
    const settleArgs = async (cumulativeAmount: bigint) =>
      ({
        ...reserve,
        account: payee.account,
        functionName: 'settle',
        args: [descriptor, cumulativeAmount, await voucher(payer, channelId, cumulativeAmount)],
      }) as const
    expect(await revertOf(payee.simulateContract(await settleArgs(2_500n)))).toBe(
      'AmountNotIncreasing',
    )
    expect(await revertOf(payee.simulateContract(await settleArgs(10_001n)))).toBe(
      'AmountExceedsDeposit',
    )
    // Signed by someone else.
    expect(
      await revertOf(
        payee.simulateContract({
          ...reserve,
          account: payee.account,
          functionName: 'settle',
          args: [descriptor, 3_000n, await voucher(payee, channelId, 3_000n)],
        }),
      ),
    ).toBe('InvalidSignature')
    // Submitted by someone other than the payee or operator.
    expect(
      await revertOf(
        payer.simulateContract({ ...(await settleArgs(3_000n)), account: payer.account }),
      ),
    ).toBe('NotPayeeOrOperator')
  })

  test('topUp adds to the deposit and cancels a close request', async () => {
    const payer = clientFor(1)
    const { descriptor, channelId } = await open(payer)
    await Actions.channel.requestCloseSync(payer, { channel: descriptor })
    const requested = await payer.readContract({
      ...reserve,
      functionName: 'getChannelState',
      args: [channelId],
    })
    expect(requested.closeRequestedAt).toBeGreaterThan(0)
    const { receipt } = await Actions.channel.topUpSync(payer, {
      channel: descriptor,
      additionalDeposit: 5_000n,
    })
    const names = reserveEvents(receipt.logs).map((event) => event.eventName)
    expect(names.sort()).toEqual(['CloseRequestCancelled', 'TopUp'])
    expect(
      await payer.readContract({ ...reserve, functionName: 'getChannelState', args: [channelId] }),
    ).toEqual({ settled: 0n, deposit: 15_000n, closeRequestedAt: 0 })
  })

  test('close with partial capture pays the payee the capture and refunds the rest', async () => {
    const payer = clientFor(3)
    const payee = clientFor(4)
    const { descriptor, channelId } = await open(payer, payee, 10_000n)
    const payerBefore = await balanceOf(payer.account.address)
    const payeeBefore = await balanceOf(payee.account.address)
    const signature = await voucher(payer, channelId, 6_000n)
    // Capture must lie between what is settled and the voucher, and within the deposit.
    expect(
      await revertOf(
        payee.simulateContract({
          ...reserve,
          account: payee.account,
          functionName: 'close',
          args: [descriptor, 6_000n, 6_001n, signature],
        }),
      ),
    ).toBe('CaptureAmountInvalid')
    const { receipt } = await Actions.channel.closeSync(payee, {
      channel: descriptor,
      cumulativeAmount: 6_000n,
      captureAmount: 4_000n,
      signature,
    })
    const closed = reserveEvents(receipt.logs).find((event) => event.eventName === 'ChannelClosed')
    expect(closed?.args).toMatchObject({ settledToPayee: 4_000n, refundedToPayer: 6_000n })
    // The payer paid no fee here; the payee paid the close transaction's fee in pathUSD.
    expect((await balanceOf(payer.account.address)) - payerBefore).toBe(6_000n)
    expect((await balanceOf(payee.account.address)) - payeeBefore).toBeLessThanOrEqual(4_000n)
    expect(
      await payer.readContract({ ...reserve, functionName: 'getChannelState', args: [channelId] }),
    ).toEqual({ settled: 0n, deposit: 0n, closeRequestedAt: 0 })
    // Closed channels are gone.
    expect(
      await revertOf(
        payer.simulateContract({
          ...reserve,
          account: payer.account,
          functionName: 'requestClose',
          args: [descriptor],
        }),
      ),
    ).toBe('ChannelNotFound')
  })

  // Runs last: it moves the chain's clock forward.
  test('withdraw only after the close grace period', async () => {
    const payer = clientFor(5)
    const { descriptor } = await open(payer, clientFor(6), 7_000n)
    const withdraw = () =>
      payer.simulateContract({
        ...reserve,
        account: payer.account,
        functionName: 'withdraw',
        args: [descriptor],
      })
    expect(await revertOf(withdraw())).toBe('CloseNotReady')
    await Actions.channel.requestCloseSync(payer, { channel: descriptor })
    expect(await revertOf(withdraw())).toBe('CloseNotReady')
    // Only the payer may withdraw.
    expect(
      await revertOf(
        clientFor(6).simulateContract({
          ...reserve,
          account: clientFor(6).account,
          functionName: 'withdraw',
          args: [descriptor],
        }),
      ),
    ).toBe('NotPayer')

    await payer.request({ method: 'evm_increaseTime' as never, params: [900] as never })
    await payer.request({ method: 'evm_mine' as never })
    const before = await balanceOf(payer.account.address)
    const { receipt } = await Actions.channel.withdrawSync(payer, {
      channel: descriptor,
      nonceKey: 0n,
    } as never)
    expect(receipt.status).toBe('success')
    // The refund is the whole deposit; the withdraw's fee comes out of the same balance.
    const gained = (await balanceOf(payer.account.address)) - before
    expect(gained).toBeLessThanOrEqual(7_000n)
    expect(gained).toBeGreaterThan(0n)
  })
})

const reserveEvents = (logs: readonly Log[]) =>
  parseEventLogs({ abi: Abis.tip20ChannelReserve, logs: logs as Log[] })
