-- Trims stream KEYS[1] to MINID ARGV[1], but only if at this instant no consumer group on it
-- still needs an entry below ARGV[1]: every group was delivered at least up to ARGV[2] (the id
-- just below the cut) and holds no pending entry below ARGV[1]; the group ARGV[3] must exist.
-- A script runs atomically, so no read, claim, new group or XGROUP SETID can slip in between
-- this check and the trim. Errors start with REFUSED; nothing is deleted then.

-- Ids are compared as two canonical decimals (Redis writes them without leading zeros):
-- a longer number is larger, equal lengths compare as text. Lua numbers are doubles and
-- would round a 64-bit sequence.
local function compare_decimal(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local function compare_id(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  if not a_ms or not b_ms then return nil end
  local by_ms = compare_decimal(a_ms, b_ms)
  if by_ms ~= 0 then return by_ms end
  return compare_decimal(a_seq, b_seq)
end

local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then
  return redis.error_reply('REFUSED the stream has no consumer groups')
end
local required_found = false
for _, fields in ipairs(groups) do
  local group = {}
  for i = 1, #fields, 2 do group[fields[i]] = fields[i + 1] end
  local name = tostring(group['name'])
  if name == ARGV[3] then required_found = true end
  local delivered = compare_id(tostring(group['last-delivered-id']), ARGV[2])
  if delivered == nil or delivered < 0 then
    return redis.error_reply('REFUSED group ' .. name .. ' (last delivered ' ..
      tostring(group['last-delivered-id']) .. ') has not been delivered every entry below ' .. ARGV[1])
  end
  local pending = redis.call('XPENDING', KEYS[1], name)
  if pending[1] > 0 then
    local oldest = compare_id(tostring(pending[2]), ARGV[1])
    if oldest == nil or oldest < 0 then
      return redis.error_reply('REFUSED group ' .. name .. ' has pending entry ' ..
        tostring(pending[2]) .. ' below ' .. ARGV[1])
    end
  end
end
if not required_found then
  return redis.error_reply('REFUSED consumer group ' .. ARGV[3] .. ' does not exist')
end
return redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
