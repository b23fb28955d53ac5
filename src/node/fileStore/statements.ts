import type { Database, Statement } from './sqlite.js'

/** A channel row with its ledger row, as the pool reads it. */
const select = `SELECT c.channel_id, c.scope_key, c.chain_id, c.escrow_contract, c.cumulative_amount,
  c.deposit, c.descriptor_json, c.entry_json, c.state, l.mark, l.signed, l.spent, l.lease_id,
  l.lease_pid, l.lease_host, l.lease_started, l.lease_expires, l.opening_until
FROM channels c LEFT JOIN viem_mpp_ledger l ON l.channel_id = c.channel_id`

/**
 * The pool's statements, prepared once per handle.
 *
 * @example
 * ```ts
 * const statements = prepare(database)
 * statements.renew.run(expiresAt, channelId, leaseId)
 * ```
 */
export function prepare(database: Database) {
  return {
    scope: database.prepare(
      `${select} WHERE c.scope_key = ? OR (c.scope_key > ? AND c.scope_key < ?) ORDER BY c.rowid`,
    ),
    byId: database.prepare(`${select} WHERE lower(c.channel_id) = lower(?)`),
    all: database.prepare(`${select} WHERE c.scope_key IS NOT NULL ORDER BY c.rowid`),
    scopeTaken: database.prepare('SELECT 1 FROM channels WHERE scope_key = ?'),
    canonicalRow: database.prepare('SELECT channel_id, state FROM channels WHERE scope_key = ?'),
    firstActivePooled: database.prepare(
      'SELECT channel_id FROM channels WHERE scope_key > ? AND scope_key < ? AND state = ? ORDER BY rowid LIMIT 1',
    ),
    firstPooled: database.prepare(
      'SELECT channel_id FROM channels WHERE scope_key > ? AND scope_key < ? ORDER BY rowid LIMIT 1',
    ),
    move: database.prepare(
      'UPDATE channels SET scope_key = ?, origin = ?, request_url = ? WHERE channel_id = ?',
    ),
    insert: database.prepare(`INSERT INTO channels (
      channel_id, version, scope_key, origin, request_url, chain_id, escrow_contract, token, payee,
      payer, authorized_signer, salt, session_protocol, descriptor_json, entry_json, deposit,
      cumulative_amount, accepted_cumulative, challenge_echo, state, close_requested_at,
      grace_ready_at, created_at, last_used_at, server_spent
    ) VALUES (?, 2, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'v2', ?, ?, ?, ?, '0', '{}', ?, 0, 0, ?, ?, '0')`),
    entry: database.prepare(
      'UPDATE channels SET entry_json = ?, cumulative_amount = ?, deposit = ?, state = ?, last_used_at = ? WHERE channel_id = ?',
    ),
    deleteChannel: database.prepare('DELETE FROM channels WHERE channel_id = ?'),
    holding: database.prepare(`SELECT l.lease_id, c.cumulative_amount FROM viem_mpp_ledger l
      LEFT JOIN channels c ON c.channel_id = l.channel_id WHERE l.channel_id = ?`),
    scopeKeyOf: database.prepare('SELECT scope_key FROM channels WHERE channel_id = ?'),
    upsertLedger: database.prepare(`INSERT INTO viem_mpp_ledger (channel_id, mark, signed, spent,
      lease_id, lease_pid, lease_host, lease_started, lease_expires, opening_until)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(channel_id) DO UPDATE SET mark = excluded.mark, signed = excluded.signed,
      spent = excluded.spent, lease_id = excluded.lease_id, lease_pid = excluded.lease_pid,
      lease_host = excluded.lease_host, lease_started = excluded.lease_started,
      lease_expires = excluded.lease_expires, opening_until = excluded.opening_until`),
    renew: database.prepare(
      'UPDATE viem_mpp_ledger SET lease_expires = ? WHERE channel_id = ? AND lease_id = ?',
    ),
    deleteLedger: database.prepare('DELETE FROM viem_mpp_ledger WHERE channel_id = ?'),
  } satisfies Record<string, Statement>
}

/** The pool's prepared statements. */
export type Statements = ReturnType<typeof prepare>
