"""The Lua scripts of the Redis online store (:mod:`larder.online.stores.redis`), each run atomically
by the server.

``WRITE_SCRIPT``
    Merge rows into a generation: per key, rewrite the hash only when the incoming ``_order`` is at
    least the stored one (compared as decimal strings, exact beyond 2**53); first check that the
    generation written to is still current (unless staging).
``SWITCH_SCRIPT``
    ``replace_table``'s generation switch, refusing an older publication.
``RAISE_SCRIPT``
    A merge publish raises the served generation's publication order.
"""

from __future__ import annotations

#: ``ge(a, b)``: a >= b for canonical decimal integers (any length, optional minus sign).
LUA_GE = """
local function ge(a, b)  -- a >= b for canonical decimal integers
  local na, nb = string.byte(a, 1) == 45, string.byte(b, 1) == 45
  if na ~= nb then return nb end
  if #a ~= #b then
    if na then return #a < #b end
    return #a > #b
  end
  if na then return a <= b end
  return a >= b
end
"""

WRITE_SCRIPT = LUA_GE + """
local expected = ARGV[1]
if expected ~= '' then
  local current = redis.call('GET', KEYS[1])
  if current ~= expected then return {-1, current or ''} end
end
local ttl = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local complete = string.rep('0', m)
local written, created = 0, 0
local pos = 4
for i = 2, #KEYS do
  local key, order, mask = KEYS[i], ARGV[pos], ARGV[pos + 1]
  local cur = redis.call('HGET', key, '_order')
  if (not cur) or ge(order, cur) then
    if cur then redis.call('DEL', key) else created = created + 1 end
    if mask == complete then
      redis.call('HSET', key, '_order', order, unpack(ARGV, pos + 2, pos + 1 + 2 * m))
    else
      local args = {'_order', order}
      for j = 1, m do
        if string.byte(mask, j) == 48 then
          args[#args + 1] = ARGV[pos + 2 * j]
          args[#args + 1] = ARGV[pos + 2 * j + 1]
        end
      end
      redis.call('HSET', key, unpack(args))
    end
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    written = written + 1
  end
  pos = pos + 2 + 2 * m
end
return {written, created}
"""

#: The generation switch of replace_table, in one atomic step. KEYS: pointer, publications (hash
#: generation -> publication), generations (set); ARGV: the new generation, its publication ('' if
#: unordered). Returns {1, previous or ''} when switched, {0, current} when the served publication is
#: newer (refused), {2, current} when it is the same publication switched by a later-started replace.
SWITCH_SCRIPT = LUA_GE + """
local cur = redis.call('GET', KEYS[1])
local p = ARGV[2]
if cur and p ~= '' then
  local cp = redis.call('HGET', KEYS[2], cur)
  if cp then
    if not ge(p, cp) then return {0, cur} end
    if p == cp and not ge(ARGV[1], cur) then return {2, cur} end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
if p ~= '' then redis.call('HSET', KEYS[2], ARGV[1], p) end
redis.call('SADD', KEYS[3], ARGV[1])
return {1, cur or ''}
"""

#: A merge publish raises the served generation's publication. KEYS: pointer, publications; ARGV: it.
RAISE_SCRIPT = LUA_GE + """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local cp = redis.call('HGET', KEYS[2], cur)
if (not cp) or ge(ARGV[1], cp) then redis.call('HSET', KEYS[2], cur, ARGV[1]) end
return 1
"""


__all__ = ["LUA_GE", "RAISE_SCRIPT", "SWITCH_SCRIPT", "WRITE_SCRIPT"]
