import { type ChildProcess, spawn } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Session } from 'mppx/tempo'
import type { Address, Hex } from 'viem'
import { Addresses } from 'viem/tempo'
import { afterEach, expect } from 'vitest'
import type { PaidRpc } from '../../src/testing/index.js'
import type { useLocalnet } from './localnet.js'
import { sessionHelpers } from './sessions.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const fixture = join(root, 'test/fixtures/sessionRun.ts')
const { Chain } = Session.Precompile

/**
 * How a payer run ends: `exit` (`process.exit` right after the calls, nothing released),
 * `release` or `close` (the provider's, first), `natural` (nothing called: the process ends when
 * it has nothing left to do, as a script does).
 */
export type Ending = 'exit' | 'release' | 'close' | 'natural'
export type RunResult = {
  ok: number
  failed: number
  errors: string[]
  /** How many calls failed with each kind of error: `name` or `name/cause name:reason`. */
  kinds: Record<string, number>
  closed?: { channelId: Hex; settled: string; refunded: string }[]
}

export type ChannelTruth = {
  channelId: Hex
  highestVoucher: bigint
  spent: bigint
  units: number
  deposit: bigint
}

/**
 * Payer processes (`test/fixtures/sessionRun.ts`) paying a paid RPC of `localnet` with
 * `session()` on a shared store, and the counterparty's truth to check them against: what the
 * server holds of each channel and what the chain settles. Processes still running after a test
 * are killed.
 *
 * @example
 * ```ts
 * const runs = payerRuns(localnet)
 * const result = await runs.run(rpc, 0, { calls: 3, store: join(dir, 'channels.db') })
 * ```
 */
export function payerRuns(localnet: ReturnType<typeof useLocalnet>) {
  const helpers = sessionHelpers(localnet)
  const children = new Set<ChildProcess>()
  afterEach(() => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    children.clear()
  })

  /** A payer process (`test/fixtures/sessionRun.ts`), started and printing `ready`. */
  async function startRun(
    rpc: PaidRpc,
    account: number,
    {
      calls,
      concurrency = 1,
      ending = 'exit',
      progress = false,
      store,
      env = {},
    }: {
      calls: number
      concurrency?: number
      ending?: Ending
      progress?: boolean
      /** A `fileChannelStore` path, or a `redis://` URL for `redisChannelStore`. */
      store: string
      /** More environment for the payer (`TEMPO_HOME`, `VIEM_MPP_TEST_PREFIX`, …). */
      env?: Record<string, string>
    },
  ) {
    const { net } = localnet
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        fixture,
        rpc.url,
        net.rpcUrl,
        String(net.chain.id),
        net.accounts[account]!.privateKey,
        store,
        String(calls),
        String(concurrency),
        ending,
        progress ? 'progress' : '',
      ],
      { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } },
    )
    children.add(child)
    let stderr = ''
    child.stderr?.on('data', (chunk) => {
      stderr += chunk
    })
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    )
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    const nextLine = async () => {
      const { value, done } = await lines.next()
      if (done) throw new Error(`the payer ended without a line (stderr: ${stderr.slice(-2000)})`)
      return String(value)
    }
    expect(await nextLine()).toBe('ready')
    return {
      child,
      nextLine,
      exited,
      /** Lets it pay. */
      go: () => child.stdin?.end('go\n'),
      /** Makes `count` calls, and returns once they are done; the run goes on. */
      async step(count: number): Promise<RunResult> {
        child.stdin?.write(`${count}\n`)
        let line = await nextLine()
        while (line.startsWith('progress ')) line = await nextLine()
        return JSON.parse(line) as RunResult
      },
      /** Ends a run made in steps (as its ending says). */
      end: () => child.stdin?.end('end\n'),
      /** Its result, once it ended normally. */
      async result(): Promise<RunResult> {
        let line = await nextLine()
        while (line.startsWith('progress ')) line = await nextLine()
        const result = JSON.parse(line) as RunResult
        const { code } = await exited
        expect(code, stderr.slice(-2000)).toBe(0)
        return result
      },
    }
  }

  /** Runs a payer to its end. */
  async function run(rpc: PaidRpc, account: number, options: Parameters<typeof startRun>[2]) {
    const started = await startRun(rpc, account, options)
    started.go()
    return started.result()
  }

  /** Runs payers at once (each started first, then all let go together). */
  async function runTogether(
    rpc: PaidRpc,
    account: number,
    options: Parameters<typeof startRun>[2][],
  ) {
    const started = await Promise.all(options.map((option) => startRun(rpc, account, option)))
    for (const one of started) one.go()
    return Promise.all(started.map((one) => one.result()))
  }

  /** Every channel the payer opened since `fromBlock` (ChannelOpened on chain), as the server holds it. */
  async function channelsOf(
    rpc: PaidRpc,
    payer: Address,
    fromBlock: bigint,
  ): Promise<ChannelTruth[]> {
    const opened = await helpers.channelEvents('ChannelOpened', payer, fromBlock)
    return Promise.all(
      opened.map(async (log) => {
        const channelId = (log.args as { channelId: Hex }).channelId
        const held = await rpc.channel(channelId)
        return {
          channelId,
          highestVoucher: held?.highestVoucher ?? 0n,
          spent: held?.spent ?? 0n,
          units: held?.units ?? 0,
          deposit: held?.deposit ?? 0n,
        }
      }),
    )
  }

  /** Prints the figures of each channel: highest voucher held against what was served. */
  function report(label: string, calls: number, channels: ChannelTruth[], price: bigint) {
    console.log(
      `[${label}] calls reported ${calls}, channels ${channels.length}\n${channels
        .map(
          ({ channelId, highestVoucher, spent, units }) =>
            `  ${channelId.slice(0, 10)}… highest voucher ${highestVoucher}, spent ${spent}, units ${units} (served ${BigInt(units) * price}), voucher − served ${highestVoucher - spent} (${(highestVoucher - spent) / price} prices)`,
        )
        .join('\n')}`,
    )
  }

  /**
   * The payee settles its highest voucher of each channel on chain, and the chain's settled amount
   * is that voucher: what the payer pays in the end.
   */
  async function settleAll(rpc: PaidRpc, channels: ChannelTruth[]) {
    const settled: bigint[] = []
    for (const { channelId, highestVoucher } of channels) {
      if (highestVoucher > 0n) await rpc.settle(channelId)
      const state = await Chain.getChannelState(
        helpers.plain(),
        channelId,
        Addresses.tip20ChannelReserve,
      )
      settled.push(state.settled)
    }
    return settled
  }

  /**
   * The exact invariant: on every channel the server holds a highest voucher equal to what it
   * charged (its price times the calls it served), the calls served add up to `calls`, and what
   * settles on chain is exactly that.
   */
  async function expectExact(
    label: string,
    rpc: PaidRpc,
    payer: Address,
    fromBlock: bigint,
    calls: number,
  ) {
    const channels = await channelsOf(rpc, payer, fromBlock)
    report(label, calls, channels, rpc.price)
    for (const { highestVoucher, spent, units } of channels) {
      expect({ highestVoucher, spent }).toEqual({
        highestVoucher: spent,
        spent: BigInt(units) * rpc.price,
      })
    }
    expect(channels.reduce((sum, { units }) => sum + units, 0)).toBe(calls)
    const settled = await settleAll(rpc, channels)
    console.log(`[${label}] settled on chain: ${settled.join(', ')}`)
    expect(settled).toEqual(channels.map(({ units }) => BigInt(units) * rpc.price))
    return channels
  }

  return { startRun, run, runTogether, channelsOf, report, settleAll, expectExact }
}
