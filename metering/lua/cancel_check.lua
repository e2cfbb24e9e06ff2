-- Cancel a check that got no answer (its client timed out and answered 503),
-- whether Redis ran it already or will run it later: either way it ends with
-- nothing reserved and nothing billed. Safe to run more than once.
--
-- KEYS[1]  the check's record (check_and_reserve.lua's KEYS[4])
-- KEYS[2]  quota counter of the check's period
-- KEYS[3]  the customer's pending usage hash
-- ARGV[1]  cost the check asked for, units
-- ARGV[2]  usage field the check billed to, or "" if it only reserved
-- ARGV[3]  ms the record is kept (it must outlive a check still queued)
-- ARGV[4]  ms the usage hash is kept if never flushed (a safety net)
--
-- Returns an integer
--   0  already cancelled: nothing done
--   1  the check has not run (or was refused): when it runs, it refuses
--   2  the check had reserved: its units are given back and unbilled
assert(#KEYS == 3, "cancel_check: expected 3 keys")
assert(#ARGV == 4, "cancel_check: expected 4 arguments")

local state = redis.call("GET", KEYS[1])
if state == "cancelled" then return 0 end
redis.call("SET", KEYS[1], "cancelled", "PX", ARGV[3])
if not state then return 1 end

local cost = tonumber(ARGV[1])
if ARGV[2] ~= "" then
  -- May go negative: a flush since the check moved the units to PostgreSQL,
  -- and the next flush subtracts them there (as settle.lua does).
  if redis.call("HINCRBY", KEYS[3], ARGV[2], -cost) == 0 then
    redis.call("HDEL", KEYS[3], ARGV[2])
  else
    redis.call("PEXPIRE", KEYS[3], ARGV[4])
  end
end
-- DECRBY keeps the counter's TTL; never below zero (see settle.lua).
local refund = math.min(cost, tonumber(redis.call("GET", KEYS[2])) or 0)
if refund > 0 then
  redis.call("DECRBY", KEYS[2], refund)
end
return 2
