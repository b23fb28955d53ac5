/**
 * Compiles `src/testing/contracts/TIP20ChannelReserve.sol` with the npm `solc` package (the compiler as
 * JavaScript, so no native toolchain or network is needed) and writes
 * `src/testing/contracts/TIP20ChannelReserve.json`.
 *
 * Every setting that affects the output is pinned here and recorded in the artifact, and the
 * metadata hash is switched off, so the same source and compiler always give byte-identical
 * output. `test/unit/reserveArtifact.test.ts` relies on that: it recompiles and compares.
 *
 * Usage: `npm run contracts:build`.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { keccak256, stringToBytes } from 'viem'

export const contractName = 'TIP20ChannelReserve'

const sourceName = `${contractName}.sol`
const sourceUrl = new URL(`../src/testing/contracts/${sourceName}`, import.meta.url)
const artifactUrl = new URL(`../src/testing/contracts/${contractName}.json`, import.meta.url)

/** Compiler settings that shape the bytecode. `outputSelection` is added per compile. */
export const settings = {
  // `cancun` is the first EVM version with transient storage (TLOAD/TSTORE), which the
  // same-transaction reopen guard needs; anvil's Tempo T4 accepts it.
  evmVersion: 'cancun',
  optimizer: { enabled: true, runs: 200 },
  // No metadata hash or CBOR trailer: the bytecode depends on the source and settings only.
  metadata: { bytecodeHash: 'none', appendCBOR: false },
} as const

export type Artifact = {
  contractName: string
  compiler: { version: string; settings: typeof settings }
  sourceHash: `0x${string}`
  abi: readonly Record<string, unknown>[]
  deployedBytecode: `0x${string}`
  storageLayout: { contextHashSlot: number }
}

type StorageEntry = { label: string; slot: string; offset: number; type: string }
type SolcOutput = {
  errors?: { severity: 'error' | 'warning' | 'info'; formattedMessage: string }[]
  contracts?: Record<
    string,
    Record<
      string,
      {
        abi: Record<string, unknown>[]
        evm: { deployedBytecode: { object: string } }
        storageLayout: { storage: StorageEntry[] }
      }
    >
  >
}
type Solc = { version(): string; compile(input: string): string }

/** Compiles the reserve and returns the artifact (what the build script writes). */
export function compile(): Artifact {
  const solc = createRequire(import.meta.url)('solc') as Solc
  const source = readFileSync(sourceUrl, 'utf8')

  const input = {
    language: 'Solidity',
    sources: { [sourceName]: { content: source } },
    settings: {
      ...settings,
      outputSelection: {
        [sourceName]: { [contractName]: ['abi', 'evm.deployedBytecode.object', 'storageLayout'] },
      },
    },
  }
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput

  // Errors and unexpected warnings fail the build. Two warnings are expected and accepted:
  // solc's general caution about transient storage (used on purpose, for the per-transaction
  // open guard), and that `storageCredits` could be `pure`: it must stay `view` to match the
  // precompile's ABI, although this stand-in always answers 0.
  const expected = (message: string) =>
    message.includes('Transient storage as defined by EIP-1153') ||
    (message.includes('can be restricted to pure') && message.includes('function storageCredits('))
  const problems = (output.errors ?? []).filter(
    (e) => e.severity === 'error' || (e.severity === 'warning' && !expected(e.formattedMessage)),
  )
  if (problems.length > 0)
    throw new Error(`solc reported:\n${problems.map((e) => e.formattedMessage).join('\n')}`)

  const contract = output.contracts?.[sourceName]?.[contractName]
  if (!contract) throw new Error(`solc produced no ${contractName}`)

  // The JSON-RPC shim writes each sender's context hash into this mapping, so its slot is part
  // of the artifact rather than a number copied by hand.
  const contextHash = contract.storageLayout.storage.find((s) => s.label === '_openContextHash')
  if (!contextHash) throw new Error('storage layout has no _openContextHash')

  return {
    contractName,
    compiler: { version: solc.version(), settings },
    sourceHash: keccak256(stringToBytes(source)),
    abi: contract.abi,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
    storageLayout: { contextHashSlot: Number(contextHash.slot) },
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const artifact = compile()
  writeFileSync(artifactUrl, `${JSON.stringify(artifact, null, 2)}\n`)
  console.log(
    `wrote ${fileURLToPath(artifactUrl)} (${(artifact.deployedBytecode.length - 2) / 2} bytes, solc ${artifact.compiler.version})`,
  )
}
