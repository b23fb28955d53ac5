import {
  ContractFunctionExecutionError,
  ContractFunctionZeroDataError,
  HttpRequestError,
  parseAbi,
} from 'viem'
import { describe, expect, test } from 'vitest'
import { redactError, redactUrl, redactUrls } from '../../src/internal/redactUrl.js'

describe('redaction', () => {
  test('a URL is cut down to its origin', () => {
    expect(redactUrl('https://user:pass@rpc.example.com:8545/v2/KEY?apikey=SECRET#x')).toBe(
      'https://rpc.example.com:8545',
    )
    expect(redactUrl('not a url')).toBe('<invalid URL>')
  })

  test('every URL in a text is cut down to its origin', () => {
    expect(
      redactUrls('failed at https://a.example/v2/KEY?k=SECRET, then at http://u:p@b.example:1/x.'),
    ).toBe('failed at https://a.example, then at http://b.example:1.')
  })

  test('an error chain keeps its names and messages, without URL secrets', () => {
    const inner = new HttpRequestError({
      url: 'https://rpc.example.com/v2/SECRET-KEY?apikey=SECRET',
      status: 500,
      details: 'boom at https://rpc.example.com/v2/SECRET-KEY',
    })
    const outer = new Error('payment failed', { cause: inner })
    const copy = redactError(outer)
    expect(copy.name).toBe('Error')
    expect(copy.message).toBe('payment failed')
    const cause = copy.cause as Error
    expect(cause.name).toBe('HttpRequestError')
    expect(cause.message).toBe('HTTP request failed. boom at https://rpc.example.com')
    for (let error: unknown = copy; error instanceof Error; error = error.cause)
      expect(error.message).not.toContain('SECRET')
  })

  test("a failed contract read keeps its contract and function, not the request's body", () => {
    const abi = parseAbi(['function balanceOf(address) view returns (uint256)'])
    const error = new ContractFunctionExecutionError(
      new ContractFunctionZeroDataError({ functionName: 'balanceOf' }),
      {
        abi,
        functionName: 'balanceOf',
        args: ['0x1111111111111111111111111111111111111111'],
        contractAddress: '0x20C0000000000000000000000000000000000000',
      },
    )
    expect(redactError(error).message).toBe(
      'The contract function "balanceOf" returned no data ("0x"). (contract 0x20C0000000000000000000000000000000000000, function balanceOf(address))',
    )
  })
})
