-- Settle a request the limiter admitted: bill it or give its quota back, and
-- add its cost sample. The one Redis round trip after the view.
--
-- KEYS[1]  quota counter for the request's period (as in check_and_reserve)
-- KEYS[2]  the customer's pending usage hash (moved to PostgreSQL by the flush)
-- KEYS[3]  idempotency marker for the request's Idempotency-Key ("" if none sent)
-- ARGV[1]  "1" if the response makes the request billable (2xx, not HEAD/OPTIONS)
-- ARGV[2]  cost: quota units reserved for the request
-- ARGV[3]  usage field: "u|<hour>|<key id>|<endpoint>"
-- ARGV[4]  ms the usage hash is kept if never flushed (a safety net)
-- ARGV[5]  seconds an Idempotency-Key is remembered (24 h)
-- ARGV[6..] pairs of (cost field, increment) added whether billed or not
--
-- Returns {billed, used}
--   billed  1 when counted as usage, 0 when the reservation was given back
--   used    quota units used in the period after settling
--
-- A retry (an Idempotency-Key this customer already sent successfully) is
-- served but not billed. The marker is set only by a billable success, so a
-- failed first attempt leaves the retry billable.
assert(#KEYS == 3, "settle: expected 3 keys")
assert(#ARGV >= 5 and #ARGV % 2 == 1, "settle: expected 5 arguments and field/increment pairs")

local billable = ARGV[1] == "1"
local cost = tonumber(ARGV[2])
local hash_ttl = tonumber(ARGV[4])

for i = 6, #ARGV, 2 do
  redis.call("HINCRBY", KEYS[2], ARGV[i], ARGV[i + 1])
end

if billable and KEYS[3] ~= "" then
  if not redis.call("SET", KEYS[3], "1", "NX", "EX", tonumber(ARGV[5])) then
    billable = false
  end
end

local used = tonumber(redis.call("GET", KEYS[1])) or 0
if billable then
  redis.call("HINCRBY", KEYS[2], ARGV[3], cost)
else
  -- DECRBY keeps the counter's TTL. Never below zero: the period may have
  -- rolled over since the reservation, leaving a new, smaller counter.
  local refund = math.min(cost, used)
  if refund > 0 then
    used = redis.call("DECRBY", KEYS[1], refund)
  end
end
if billable or #ARGV > 5 then
  redis.call("PEXPIRE", KEYS[2], hash_ttl)
end
return {billable and 1 or 0, used}
