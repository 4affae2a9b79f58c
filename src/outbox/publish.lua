-- Publishes one round of the outbox to stream KEYS[1], as a Dapr publisher writes each entry
-- (`XADD <stream> [MAXLEN ~ n] * data <CloudEvent> metadata {}`), but only while the relay that
-- calls it still holds the fence: KEYS[2] must hold ARGV[1], the number this relay took on
-- taking over. A relay taking over increments it first, so once it has read the stream's
-- newest entries back nothing of an earlier relay's can land behind them. Whatever cuts a
-- round short (a refusal, Redis dying) leaves at most its first entries, which the next takeover
-- reads back like any others.
-- ARGV[2] is MAXLEN's n ('' for none), ARGV[3..] the entries' `data`. Returns their ids.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('FENCED another relay took over: this one stops publishing')
end
local ids = {}
for i = 3, #ARGV do
  if ARGV[2] == '' then
    ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'data', ARGV[i], 'metadata', '{}')
  else
    ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
      'data', ARGV[i], 'metadata', '{}')
  end
end
return ids
