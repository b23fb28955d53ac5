/**
 * The Lua scripts of the Redis channel store: each read-check-write of a channel is one script,
 * so that it is atomic on the server whatever other processes do. Every key a script touches
 * shares the store's hash tag, so the scripts run on Redis Cluster as on one server.
 *
 * A channel is a hash: `v` (the layout, `1`), `origin` (`''`: the store's own entries), `key`
 * (mppx's `payee:token:escrow:chainId`), `entry` (mppx's JSON entry), `mark`, `signed` and `spent`
 * (decimal amounts; `signed` and `spent` empty when no ledger is known), `base` (the part of the
 * mark not counted against the fleet budget: what a tool without a ledger wrote), `fence` (the
 * fencing token: a new one from the store-wide counter at every claim, never repeated), `holder` (JSON of the holder, or empty), `expires` (Redis clock,
 * ms), `opening` (unix seconds until which its open may land, or empty) and `seq` (its order).
 *
 * Amounts are decimal strings added and compared as such (Lua numbers are doubles: exact only to
 * 2^53). Replies are arrays whose first element says what happened.
 */

/** Helpers every script starts with. */
const prelude = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(n) return string.format('%.0f', n) end
local function amount(s)
  if type(s) ~= 'string' or not string.find(s, '^%d+$') or (#s > 1 and string.sub(s, 1, 1) == '0') then
    error('VIEM_MPP_CORRUPT')
  end
  return s
end
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function digits(a, b, sign)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 do
    local d = (i > 0 and tonumber(string.sub(a, i, i)) or 0) + sign * (j > 0 and tonumber(string.sub(b, j, j)) or 0) + carry
    carry = 0
    if d < 0 then d = d + 10; carry = -1 elseif d > 9 then d = d - 10; carry = 1 end
    table.insert(out, 1, tostring(d))
    i = i - 1; j = j - 1
  end
  if carry > 0 then table.insert(out, 1, '1') end
  local s = string.gsub(table.concat(out), '^0+', '')
  return s == '' and '0' or s
end
local function add(a, b) return digits(a, b, 1) end
local function sub(a, b) return digits(a, b, -1) end
local function digitsOnly(s)
  if type(s) ~= 'string' or not string.find(s, '^%d+$') then error('VIEM_MPP_CORRUPT') end
  return s
end
local function channel(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return nil end
  if kind ~= 'hash' then error('VIEM_MPP_CORRUPT') end
  local f = redis.call('HMGET', key, 'v', 'fence', 'expires', 'mark', 'origin', 'entry', 'signed', 'spent', 'base', 'holder')
  if f[1] ~= '1' then error('VIEM_MPP_CORRUPT') end
  digitsOnly(f[2])
  digitsOnly(f[3])
  local decoded, entry = pcall(cjson.decode, f[6] or '')
  if not decoded or type(entry) ~= 'table' then error('VIEM_MPP_CORRUPT') end
  if f[7] and f[7] ~= '' then amount(f[7]) end
  if f[8] and f[8] ~= '' then amount(f[8]) end
  if f[10] and f[10] ~= '' and string.sub(f[10], 1, 1) ~= '{' then error('VIEM_MPP_CORRUPT') end
  return { fence = f[2], expires = tonumber(f[3]), mark = amount(f[4]), origin = f[5] or '', base = amount(f[9] or '0') }
end
local function maxOf(a, b) return cmp(a, b) >= 0 and a or b end
local function held(c, fence, t) return c ~= nil and c.fence == fence and c.expires > t end
`

/** The fields of a channel a read returns, in this order, after its id. */
export const channelFields = [
  'v',
  'origin',
  'key',
  'entry',
  'mark',
  'signed',
  'spent',
  'fence',
  'holder',
  'expires',
  'opening',
] as const

const readLua = `
local function read(ids)
  local out = {}
  for _, id in ipairs(ids) do
    local key = KEYS[1] .. id
    local kind = redis.call('TYPE', key)['ok']
    if kind == 'hash' then
      table.insert(out, { id, unpack(redis.call('HMGET', key, ${channelFields.map((field) => `'${field}'`).join(', ')})) })
    elseif kind ~= 'none' then
      table.insert(out, { id, 'VIEM_MPP_CORRUPT' })
    end
  end
  return out
end
`

/**
 * The Lua of each operation, with how many of its arguments are keys. `KEYS[1]` is always the
 * prefix of channel hashes (`{tag}:channel:`) where a script reads channels by id.
 */
export const scripts = {
  /**
   * Reads every channel of some scopes (or of the whole store): KEYS = channel prefix, then the
   * scopes' sorted sets. Returns the Redis clock and the channels.
   */
  read: `${prelude}${readLua}
local channels = {}
for i = 2, #KEYS do
  for _, c in ipairs(read(redis.call('ZRANGE', KEYS[i], 0, -1))) do table.insert(channels, c) end
end
return { int(now()), channels }`,

  /**
   * Leases a channel if its fence is still `seen` and its lease is free (expired, or its holder
   * known dead), with a new fence: KEYS = channel prefix, its scope now, the scope at `origin`,
   * the store-wide counter; ARGV = id, seen fence, take over a live lease ('1': its holder is
   * dead), ttl ms, holder JSON, origin now, origin. Returns the channel as it is now (as `read`
   * does), so that the lease starts from its current ledger.
   */
  claim: `${prelude}${readLua}
local key = KEYS[1] .. ARGV[1]
local c = channel(key)
if not c then return { 'gone' } end
local t = now()
if c.fence ~= ARGV[2] or (c.expires > t and ARGV[3] ~= '1') then return { 'taken' } end
if c.origin ~= ARGV[6] and c.origin ~= ARGV[7] then return { 'taken' } end
if c.origin ~= ARGV[7] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], redis.call('HGET', key, 'seq'), ARGV[1])
end
local fence = tostring(redis.call('INCR', KEYS[4]))
redis.call('HSET', key, 'origin', ARGV[7], 'fence', fence, 'holder', ARGV[5], 'expires', int(t + tonumber(ARGV[4])))
return { 'ok', fence, int(t), read({ ARGV[1] })[1] }`,

  /**
   * Stores a new channel, leased, if the fleet budget covers its mark: KEYS = channel, its scope,
   * every channel, the store-wide counter, the committed total; ARGV = id, origin, key, entry JSON,
   * mark, opening, ttl, holder JSON, the fleet budget ('' if none).
   */
  add: `${prelude}
if redis.call('EXISTS', KEYS[1]) == 1 then return { 'exists' } end
local committed = amount(redis.call('GET', KEYS[5]) or '0')
if ARGV[9] ~= '' and cmp(add(committed, amount(ARGV[5])), ARGV[9]) > 0 then
  return { 'budget', cmp(ARGV[9], committed) > 0 and sub(ARGV[9], committed) or '0' }
end
local t = now()
local seq = redis.call('INCR', KEYS[4])
local fence = tostring(redis.call('INCR', KEYS[4]))
redis.call('HSET', KEYS[1], 'v', '1', 'origin', ARGV[2], 'key', ARGV[3], 'entry', ARGV[4], 'mark', amount(ARGV[5]), 'base', '0', 'signed', '0', 'spent', '0', 'fence', fence, 'holder', ARGV[8], 'expires', int(t + tonumber(ARGV[7])), 'opening', ARGV[6], 'seq', seq)
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('SET', KEYS[5], add(committed, ARGV[5]))
return { 'ok', fence, int(t + tonumber(ARGV[7])) }`,

  /**
   * Stores a channel found on chain, with no lease and no ledger, unless stored: KEYS = channel,
   * its scope, every channel, the order counter; ARGV = id, origin, key, entry JSON, mark.
   */
  put: `${prelude}
if redis.call('EXISTS', KEYS[1]) == 1 then return { 'exists' } end
local seq = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'v', '1', 'origin', ARGV[2], 'key', ARGV[3], 'entry', ARGV[4], 'mark', amount(ARGV[5]), 'base', ARGV[5], 'signed', '', 'spent', '', 'fence', '0', 'holder', '', 'expires', '0', 'opening', '', 'seq', seq)
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
return { 'ok' }`,

  /**
   * Writes the mark ahead, and renews the lease, while the lease is held: KEYS = channel, the
   * committed total; ARGV = fence, mark, signed, spent, ttl, the least mark needed, the fleet
   * budget ('' if none). Under a budget the mark is raised as far as the budget allows, if that
   * covers what is needed. Never lowered.
   */
  raise: `${prelude}
local c = channel(KEYS[1])
local t = now()
if not held(c, ARGV[1], t) then return { 'lost' } end
local mark = amount(ARGV[2])
if cmp(mark, c.mark) > 0 then
  local delta = sub(mark, c.mark)
  local committed = amount(redis.call('GET', KEYS[2]) or '0')
  if ARGV[7] ~= '' then
    local room = cmp(ARGV[7], committed) > 0 and sub(ARGV[7], committed) or '0'
    if cmp(delta, room) > 0 then
      if cmp(add(c.mark, room), amount(ARGV[6])) < 0 then return { 'budget', room } end
      delta = room
      mark = add(c.mark, room)
    end
  end
  redis.call('SET', KEYS[2], add(committed, delta))
else
  mark = c.mark
end
redis.call('HSET', KEYS[1], 'mark', mark, 'signed', amount(ARGV[3]), 'spent', amount(ARGV[4]), 'expires', int(t + tonumber(ARGV[5])))
return { 'ok', mark, int(t + tonumber(ARGV[5])) }`,

  /** Renews the lease while it is held: KEYS = channel; ARGV = fence, ttl. */
  renew: `${prelude}
local c = channel(KEYS[1])
local t = now()
if not held(c, ARGV[1], t) then return { 'lost' } end
redis.call('HSET', KEYS[1], 'expires', int(t + tonumber(ARGV[2])))
return { 'ok', int(t + tonumber(ARGV[2])) }`,

  /**
   * Records a new entry (a deposit, the open landed) while the lease is held: KEYS = channel;
   * ARGV = fence, entry JSON, whether the open is settled ('1' clears \`opening\`).
   */
  update: `${prelude}
local c = channel(KEYS[1])
if not held(c, ARGV[1], now()) then return { 'lost' } end
redis.call('HSET', KEYS[1], 'entry', ARGV[2])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'opening', '') end
return { 'ok' }`,

  /**
   * Ends a lease with the exact ledger (mark = signed), giving the rest of the mark back to the
   * committed total, unless another holder claimed the channel since (its fence moved): KEYS =
   * channel, the committed total; ARGV = fence, signed, spent.
   */
  release: `${prelude}
local c = channel(KEYS[1])
if c == nil or c.fence ~= ARGV[1] then return { 'lost' } end
local signed = amount(ARGV[2])
if cmp(signed, c.mark) > 0 then signed = c.mark end
-- What a tool without a ledger wrote (base) may have been signed: the mark never goes below it.
local mark = maxOf(signed, c.base)
if cmp(mark, c.mark) > 0 then mark = c.mark end
local committed = amount(redis.call('GET', KEYS[2]) or '0')
local back = sub(c.mark, mark)
redis.call('SET', KEYS[2], cmp(committed, back) > 0 and sub(committed, back) or '0')
redis.call('HSET', KEYS[1], 'mark', mark, 'signed', signed, 'spent', amount(ARGV[3]), 'holder', '', 'expires', '0')
return { 'ok' }`,

  /**
   * Removes a channel (closed, or its open never landed) unless another holder claimed it since:
   * KEYS = channel, its scope, every channel, the committed total; ARGV = id, fence, signed.
   */
  remove: `${prelude}
local c = channel(KEYS[1])
if c == nil or c.fence ~= ARGV[2] then return { 'lost' } end
local kept = maxOf(amount(ARGV[3]), c.base)
if cmp(kept, c.mark) < 0 then
  local committed = amount(redis.call('GET', KEYS[4]) or '0')
  local back = sub(c.mark, kept)
  redis.call('SET', KEYS[4], cmp(committed, back) > 0 and sub(committed, back) or '0')
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return { 'ok' }`,

  /**
   * Writes an entry through mppx's one-entry-per-key interface (a tool that keeps no ledger: its
   * amount is what it signed, the ledger becomes unknown, and a lease held on the channel is
   * ended, so that its holder signs nothing more; the mark is never lowered, and what it adds is
   * not counted against the fleet budget: `base`): KEYS = channel, its scope, every channel, the
   * store-wide counter; ARGV = id, origin, key, entry JSON, amount.
   */
  set: `${prelude}
local c = channel(KEYS[1])
local written = amount(ARGV[5])
local mark = written
local base = written
if c == nil then
  local seq = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[1], 'v', '1', 'origin', ARGV[2], 'key', ARGV[3], 'seq', seq)
  redis.call('ZADD', KEYS[2], seq, ARGV[1])
  redis.call('ZADD', KEYS[3], seq, ARGV[1])
else
  mark = maxOf(c.mark, written)
  base = maxOf(c.base, written)
end
redis.call('HSET', KEYS[1], 'fence', tostring(redis.call('INCR', KEYS[4])), 'entry', ARGV[4], 'mark', mark, 'base', base, 'signed', '', 'spent', '', 'holder', '', 'expires', '0', 'opening', '')
return { 'ok' }`,

  /**
   * Deletes a channel through mppx's interface (`delete(key)`), whatever its lease: KEYS =
   * channel, its scope, every channel; ARGV = id.
   */
  delete: `${prelude}
channel(KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return { 'ok' }`,

  /** The committed total: KEYS = its key. */
  committed: `${prelude}
return { amount(redis.call('GET', KEYS[1]) or '0') }`,
} as const

/** The name of a script. */
export type ScriptName = keyof typeof scripts
