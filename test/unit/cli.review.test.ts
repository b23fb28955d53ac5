import { describe, expect, test } from 'vitest'
import { formatError } from '../../src/cli/errors.js'
import { ChannelStoreError } from '../../src/index.js'

describe('formatError, a store that cannot be used', () => {
  test('the one line names the file and why it cannot be opened', () => {
    const error = new ChannelStoreError({
      reason: 'unavailable',
      path: '/home/me/.tempo/wallet',
      cause: new Error('unable to open database file'),
    })
    expect(formatError(error, { verbose: false })).toBe(
      'viem-mpp: The channel database cannot be used (/home/me/.tempo/wallet): unable to open database file\n',
    )
  })

  test('a corrupt one keeps its own line, then the file and what to do', () => {
    const error = new ChannelStoreError({
      reason: 'corrupt',
      path: '/tmp/channels.db',
      cause: new Error('file is not a database'),
    })
    expect(formatError(error, { verbose: false })).toBe(
      [
        'viem-mpp: The channel database is corrupt; it was left as it is.',
        '  File: /tmp/channels.db',
        '  It may record open channels and their deposits: move it aside (or restore a backup) rather than deleting it, and recover the channels from the chain with `viem-mpp channels sync`.',
        '',
      ].join('\n'),
    )
  })
})
