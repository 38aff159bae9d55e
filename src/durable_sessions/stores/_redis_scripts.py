"""The Lua scripts of the Redis cache store (see ``redis`` for the consistency scheme).

Each runs atomically on the Redis server, so a populate never lands after a newer write bumped
the version it read.
"""

from __future__ import annotations

__all__ = [
    "ADD_GENERATION",
    "FORGET",
    "POPULATE_FIELD",
    "POPULATE_HEADER",
    "POPULATE_LISTING",
    "POPULATE_TURNS",
    "READ_HEADER",
    "READ_TURNS",
    "WRITE",
]

# Versions: a missing version key reads as ''. A populate runs only if the version it read
# before asking the wrapped store is still current.

READ_HEADER = """
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
return {0, redis.call('GET', KEYS[2]) or ''}
"""

POPULATE_HEADER = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3], 'NX')
return 1
"""

# KEYS: 1 turns hash, 2 session version. ARGV: 1 lo, 2 hi.
# The hash holds fields 'lo', 'hi' (the window [lo, hi) it knows exactly) and one field per seq.
READ_TURNS = """
local c = redis.call('HMGET', KEYS[1], 'lo', 'hi')
local clo, chi = tonumber(c[1]), tonumber(c[2])
local lo, hi = tonumber(ARGV[1]), tonumber(ARGV[2])
if clo and chi and clo <= lo and hi <= chi then
  local out = {1}
  for s = lo, hi - 1 do
    local v = redis.call('HGET', KEYS[1], tostring(s))
    if v then table.insert(out, v) end
  end
  return out
end
return {0, redis.call('GET', KEYS[2]) or ''}
"""

# KEYS: 1 turns hash, 2 session version, 3 generations set.
# ARGV: 1 version, 2 ttl ms, 3 lo, 4 hi, 5 generation, 6.. seq, json pairs.
POPULATE_TURNS = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'lo', ARGV[3], 'hi', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return 1
"""

# KEYS: 1 header, 2 session version, 3 turns hash, 4 generations set, 5 user listing,
#       6 user version, 7 parent's branch listing, 8 parent's branch version.
# ARGV: 1 header json ('' for none), 2 ttl ms, 3 recent, 4 generation, 5 session id,
#       6 '1' when the session has a parent, 7 number of turns, 8.. seq, json pairs
#       (sorted by seq, unique), then the header's turn_count (the head).
WRITE = """
local ttl = tonumber(ARGV[2])
local function bump(k)
  redis.call('INCR', k)
  redis.call('PEXPIRE', k, ttl)
end
local function join(listing, member)
  if redis.call('EXISTS', listing) == 1 then
    redis.call('HSET', listing, member, '1')
    redis.call('PEXPIRE', listing, ttl)
  end
end
bump(KEYS[2])
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  bump(KEYS[6])
  join(KEYS[5], 's:' .. ARGV[5])
  if ARGV[6] == '1' then
    bump(KEYS[8])
    join(KEYS[7], 's:' .. ARGV[5])
  end
end
local n = tonumber(ARGV[7])
if n == 0 then return 0 end
local recent = tonumber(ARGV[3])
local first = tonumber(ARGV[8])
local last = tonumber(ARGV[8 + 2 * (n - 1)])
local c = redis.call('HMGET', KEYS[3], 'lo', 'hi')
local lo, hi = tonumber(c[1]), tonumber(c[2])
if last - first + 1 == n then
  if lo == nil or hi == nil or first > hi then
    redis.call('DEL', KEYS[3])
    lo, hi = first, last + 1
  elseif last + 1 < lo then
    return 0
  else
    lo, hi = math.min(lo, first), math.max(hi, last + 1)
  end
  for i = 0, n - 1 do redis.call('HSET', KEYS[3], ARGV[8 + 2 * i], ARGV[9 + 2 * i]) end
else
  if lo == nil or hi == nil then return 0 end
  for i = 0, n - 1 do
    local s = tonumber(ARGV[8 + 2 * i])
    if s >= lo and s < hi then redis.call('HSET', KEYS[3], ARGV[8 + 2 * i], ARGV[9 + 2 * i]) end
  end
end
local head = tonumber(ARGV[8 + 2 * n])
if head and hi > head then
  -- stray copies past the head (PersistBatch): the window ends at the head
  for s = math.max(lo, head), hi - 1 do redis.call('HDEL', KEYS[3], tostring(s)) end
  hi = math.max(lo, head)
end
local newlo = math.max(lo, hi - recent)
for s = lo, newlo - 1 do redis.call('HDEL', KEYS[3], tostring(s)) end
redis.call('HSET', KEYS[3], 'lo', tostring(newlo), 'hi', tostring(hi))
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ttl)
return 1
"""

# KEYS: 1 listing hash, 2 listing version, 3.. header keys.
# ARGV: 1 version, 2 ttl ms, then n session ids, then n header jsons.
# A listing is a hash: field 'complete' plus 's:<session id>' per member (so an empty listing
# still exists).
POPULATE_LISTING = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
local n = #KEYS - 2
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'complete', '1')
for i = 1, n do
  redis.call('HSET', KEYS[1], 's:' .. ARGV[2 + i], '1')
  redis.call('SET', KEYS[2 + i], ARGV[2 + n + i], 'PX', ARGV[2], 'NX')
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: 1 generation parents hash, 2 session version, 3 turns of generation - 1, 4 turns of
#       generation. ARGV: 1 ttl ms, 2 generation, 3 'parent:fork_seq', 4 '1' when the store
#       dropped the strays of both generations (SessionStore.add_generation's prior_head).
# A generation's parent is immutable once written: it is cached right away (an idempotent
# rewrite writes the same value). Dropping strays moves the version, so no read from before lands.
ADD_GENERATION = """
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if ARGV[4] == '1' then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[3], KEYS[4])
end
return 1
"""

# KEYS: 1 generation parents hash, 2 session version. ARGV: 1 version, 2 ttl ms, 3 gen, 4 value.
POPULATE_FIELD = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: 1 header, 2 session version, 3 generations set, 4 generation parents, 5 user listing,
#       6 user version, 7 parent's branch listing, 8 parent's branch version, 9.. turn hashes.
# ARGV: 1 ttl ms, 2 session id.
FORGET = """
local ttl = tonumber(ARGV[1])
for _, k in ipairs({KEYS[2], KEYS[6], KEYS[8]}) do
  redis.call('INCR', k)
  redis.call('PEXPIRE', k, ttl)
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
for i = 9, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('HDEL', KEYS[5], 's:' .. ARGV[2])
redis.call('HDEL', KEYS[7], 's:' .. ARGV[2])
return 1
"""
