-- Settle an admitted request whose billing the check could not decide:
-- unbill one that was billed optimistically and failed, or settle one that
-- claimed an Idempotency-Key. Its quota units are given back when not billed.
--
-- KEYS[1]  quota counter for the request's period (as in check_and_reserve)
-- KEYS[2]  the customer's pending usage hash
-- KEYS[3]  the Idempotency-Key's record this request claimed, when it did
--          (see idempotency_claim.lua); absent otherwise, so that every key
--          named is in the customer's cluster slot
-- ARGV[1]  "1" if check_and_reserve already billed the units (optimistically)
-- ARGV[2]  "1" if the response makes the request billable (2xx, not OPTIONS)
-- ARGV[3]  cost: quota units reserved for the request
-- ARGV[4]  usage field: "u|<hour>|<key id>|<endpoint>"
-- ARGV[5]  ms the usage hash is kept if never flushed (a safety net)
-- ARGV[6]  seconds a settled Idempotency-Key is kept (24 h)
-- ARGV[7]  the claim's token (as given to idempotency_claim.lua)
-- ARGV[8]  "stored" to keep the response below, "not_stored" when too large
-- ARGV[9]  the response's status, ARGV[10] its content type, ARGV[11] its body
-- ARGV[12] deadline: the latest time by Redis's clock (ms) this call may run
--          at, "0" for none; past it the caller gave up and will retry, so a
--          late run must change nothing (or the retry would apply it twice)
--
-- Returns {billed, used}
--   billed  1 when the request counts as usage, 0 when it does not, -1 when
--           past the deadline (nothing changed)
--   used    quota units used in the period after settling
--
-- A billable success keeps its record for ARGV[6] s, so a repeat is answered
-- from it; a failure deletes the record, so the next attempt runs. A claim
-- whose token changed (it expired while the view ran) is left to its owner.
assert(#KEYS == 2 or #KEYS == 3, "settle: expected 2 or 3 keys")
assert(#ARGV == 12, "settle: expected 12 arguments")

if ARGV[12] ~= "0" then
  local clock = redis.call("TIME")
  if clock[1] * 1000 + math.floor(clock[2] / 1000) > tonumber(ARGV[12]) then
    return {-1, 0}
  end
end

local billed_at_check = ARGV[1] == "1"
local billable = ARGV[2] == "1"
local cost = tonumber(ARGV[3])

if KEYS[3] and redis.call("HGET", KEYS[3], "token") == ARGV[7] then
  if billable then
    redis.call("HDEL", KEYS[3], "token")
    redis.call("HSET", KEYS[3], "state", ARGV[8], "status", ARGV[9], "content_type", ARGV[10], "body", ARGV[11])
    redis.call("EXPIRE", KEYS[3], tonumber(ARGV[6]))
  else
    redis.call("DEL", KEYS[3])
  end
end

local used = tonumber(redis.call("GET", KEYS[1])) or 0
if billable then
  if not billed_at_check then
    redis.call("HINCRBY", KEYS[2], ARGV[4], cost)
    redis.call("PEXPIRE", KEYS[2], tonumber(ARGV[5]))
  end
  return {1, used}
end

if billed_at_check then
  -- The count may go negative: a flush that ran since the check moved the
  -- units to PostgreSQL, and the next flush subtracts them there.
  if redis.call("HINCRBY", KEYS[2], ARGV[4], -cost) == 0 then
    redis.call("HDEL", KEYS[2], ARGV[4])
  else
    redis.call("PEXPIRE", KEYS[2], tonumber(ARGV[5]))
  end
end
-- DECRBY keeps the counter's TTL. Never below zero: the period may have
-- rolled over since the reservation, leaving a new, smaller counter.
local refund = math.min(cost, used)
if refund > 0 then
  used = redis.call("DECRBY", KEYS[1], refund)
end
return {0, used}
