import { readFileSync } from 'node:fs'
import { Abis } from 'viem/tempo'
import { describe, expect, test } from 'vitest'
import { compile } from '../../scripts/build-reserve.js'

const artifactUrl = new URL('../../src/testing/contracts/TIP20ChannelReserve.json', import.meta.url)
const committed = JSON.parse(readFileSync(artifactUrl, 'utf8'))

type Param = { type: string; name?: string; indexed?: boolean; components?: readonly Param[] }
type Item = {
  type: string
  name?: string
  stateMutability?: string
  inputs?: readonly Param[]
  outputs?: readonly Param[]
}

/** A parameter as a string that keeps every ABI-relevant detail and drops `internalType`. */
function param(p: Param): string {
  const inner = p.components ? `(${p.components.map(param).join(',')})` : ''
  return `${p.type}${inner}${p.indexed ? ' indexed' : ''} ${p.name ?? ''}`.trim()
}

/** One ABI item as a full signature: kind, name, inputs, outputs and mutability. */
function signature(item: Item): string {
  const inputs = (item.inputs ?? []).map(param).join(', ')
  if (item.type === 'function') {
    const outputs = (item.outputs ?? []).map(param).join(', ')
    return `function ${item.name}(${inputs}) ${item.stateMutability} returns (${outputs})`
  }
  return `${item.type} ${item.name}(${inputs})`
}

function signatures(abi: readonly Item[]): string[] {
  return abi.map(signature).sort()
}

describe('contracts/TIP20ChannelReserve', () => {
  test('recompiling the source reproduces the committed artifact', () => {
    expect(compile()).toEqual(committed)
  })

  test('the context-hash mapping is at storage slot 0', () => {
    expect(committed.storageLayout.contextHashSlot).toBe(0)
  })

  test("the ABI matches viem's Abis.tip20ChannelReserve item for item", () => {
    const ours = signatures(committed.abi)
    const viems = signatures(Abis.tip20ChannelReserve as readonly Item[])
    expect(new Set(ours).size).toBe(ours.length)
    expect(ours.filter((s) => !viems.includes(s))).toEqual([])
    expect(viems.filter((s) => !ours.includes(s))).toEqual([])
    expect(ours).toEqual(viems)
  })

  test('the ABI has no fallback, receive or constructor', () => {
    const kinds = new Set((committed.abi as Item[]).map((item) => item.type))
    expect([...kinds].sort()).toEqual(['error', 'event', 'function'])
  })
})
