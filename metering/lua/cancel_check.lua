-- Cancel a billed check whose reply never reached its caller (the caller
-- answered 503): Redis ran it, then stalled before writing the reply. Found by
-- the witness check_and_reserve.lua left; without it (the check never ran,
-- or the same thread's next check replaced it, or a flush moved it) nothing
-- changes. The caller cancels before its thread checks again.
--
-- KEYS[1]  the check's quota counter
-- KEYS[2]  the customer's pending usage hash
-- ARGV[1]  the check's witness, "<slot>|<token>"
-- ARGV[2]  its usage field, ARGV[3] its cost
--
-- Returns 1 when the check was found and undone, 0 when not found.
assert(#KEYS == 2, "cancel_check: expected 2 keys")
assert(#ARGV == 3, "cancel_check: expected 3 arguments")

local bar = string.find(ARGV[1], "|", 1, true)
local slot = "w|" .. string.sub(ARGV[1], 1, bar - 1)
if redis.call("HGET", KEYS[2], slot) ~= string.sub(ARGV[1], bar + 1) then
  return 0
end
redis.call("HDEL", KEYS[2], slot)
local cost = tonumber(ARGV[3])
if redis.call("HINCRBY", KEYS[2], ARGV[2], -cost) == 0 then
  redis.call("HDEL", KEYS[2], ARGV[2])
end
local used = tonumber(redis.call("GET", KEYS[1])) or 0
local refund = math.min(cost, used)
if refund > 0 then
  redis.call("DECRBY", KEYS[1], refund)
end
return 1
