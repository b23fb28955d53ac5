import { parseArgs } from 'node:util'
import { hardfork } from '../testing/localnet/chain.js'
import { type Localnet, startLocalnet } from '../testing/localnet/startLocalnet.js'
import { commonOptions, parseCommand, parseInteger } from './args.js'
import { CliError, exitCodes } from './errors.js'
import { localnetHelp } from './help.js'

const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * `viem-mpp localnet`: starts a localnet and keeps it until a signal, the end of its parent
 * process or (with `--stop-on-stdin-close`) of stdin, then stops it and resolves with the exit
 * code.
 *
 * @example
 * ```ts
 * process.exitCode = await localnet(['--port', '8545'])
 * ```
 */
export async function localnet(args: readonly string[]): Promise<number> {
  const command = 'localnet'
  const { values } = parseCommand(command, () =>
    parseArgs({
      args: [...args],
      options: {
        ...commonOptions,
        port: { type: 'string' },
        'chain-id': { type: 'string' },
        'anvil-binary': { type: 'string' },
        'start-timeout': { type: 'string' },
        'stop-on-stdin-close': { type: 'boolean' },
        json: { type: 'boolean' },
      },
      strict: true,
    }),
  )
  if (values.help) {
    process.stdout.write(localnetHelp)
    return exitCodes.ok
  }
  const options = {
    port:
      values.port === undefined
        ? undefined
        : parseInteger('--port', values.port, { command, min: 0, max: 65_535 }),
    chainId:
      values['chain-id'] === undefined
        ? undefined
        : parseInteger('--chain-id', values['chain-id'], { command, min: 1, max: 2 ** 53 - 1 }),
    anvilBinary: values['anvil-binary'],
    startTimeout:
      values['start-timeout'] === undefined
        ? undefined
        : parseInteger('--start-timeout', values['start-timeout'], {
            command,
            min: 1,
            max: 2 ** 31 - 1,
          }),
  }

  // Listening before starting: a signal that comes while anvil starts stops it once it is up.
  // A second signal exits at once (anvil ends with this process all the same).
  let signalled = false
  const stopRequested = new Promise<string>((resolve) => {
    for (const signal of signals)
      process.on(signal, () => {
        if (signalled) process.exit(exitCodes.failed)
        signalled = true
        resolve(signal)
      })
    // Orphaned (the parent, e.g. npm or a shell script, was killed without passing the signal
    // on): reparented to init or a subreaper, so the parent id changes.
    const parent = process.ppid
    setInterval(() => process.ppid !== parent && resolve('parent exited'), 1_000).unref()
    if (values['stop-on-stdin-close']) {
      process.stdin.on('end', () => resolve('end of stdin'))
      process.stdin.resume()
    }
  })

  const net = await startLocalnet(options).catch((error: Error) => {
    throw explained(error, options.port)
  })
  if (values.json) process.stdout.write(`${JSON.stringify(describe(net))}\n`)
  else process.stdout.write(announcement(net))

  const reason = await stopRequested
  process.stderr.write(`Stopping the localnet (${reason})...\n`)
  await net.stop()
  process.stderr.write('Stopped.\n')
  return exitCodes.ok
}

/**
 * A port that fetch refuses (Node's `bad port`, from the Fetch standard's list: 1, 7, 9, ...,
 * 6000, ...) can be listened on but not reached, which fails with a bare `HTTP request failed`:
 * say what to do instead.
 */
function explained(error: Error, port: number | undefined) {
  for (let cause: unknown = error; cause instanceof Error; cause = cause.cause)
    if (cause.message === 'bad port')
      return new CliError(
        `Port ${port} is one that fetch refuses to connect to (a "bad port" of the Fetch standard): pick another --port, or omit it for a free one.`,
        { cause: error },
      )
  return error
}

function describe(net: Localnet) {
  return {
    rpcUrl: net.rpcUrl,
    chainId: net.chain.id,
    currency: net.currency,
    accounts: net.accounts.map(({ address, privateKey }) => ({ address, privateKey })),
  }
}

function announcement(net: Localnet) {
  const lines = [
    `Tempo localnet (anvil, hardfork ${hardfork.toUpperCase()}, TIP-1034 channel reserve)`,
    `RPC URL:   ${net.rpcUrl}`,
    `Chain id:  ${net.chain.id}`,
    `Currency:  ${net.currency} (pathUSD, 6 decimals)`,
    'Funded dev accounts (address, private key; anvil test keys, never use them elsewhere):',
    ...net.accounts.map(({ address, privateKey }) => `  ${address}  ${privateKey}`),
    'Press Ctrl+C to stop.',
    '',
  ]
  return lines.join('\n')
}
