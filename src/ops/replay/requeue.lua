-- Moves dead letter ARGV[1] of KEYS[1] (the dead-letter stream) back to KEYS[2] (the main
-- stream) with its original fields: every field but the ones the worker added when it
-- dead-lettered the entry (ARGV[2..]). The XADD and the XDEL run in one atomic step, so the
-- entry is never lost, and never moved twice by two operators at once: the second finds it gone.
-- Returns {1, new id}, {0, ''} when the dead letter is gone, {2, ''} when it has no original field.
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then
  return {0, ''}
end
local added = {}
for i = 2, #ARGV do
  added[ARGV[i]] = true
end
local fields = found[1][2]
local original = {}
for i = 1, #fields, 2 do
  if not added[fields[i]] then
    original[#original + 1] = fields[i]
    original[#original + 1] = fields[i + 1]
  end
end
if #original == 0 then
  return {2, ''}
end
local id = redis.call('XADD', KEYS[2], '*', unpack(original))
redis.call('XDEL', KEYS[1], ARGV[1])
return {1, id}
