-- Settle an admitted request whose billing the check could not decide:
-- unbill one that was billed optimistically and failed, or decide one that
-- carried an Idempotency-Key. Its quota units are given back when not billed.
--
-- KEYS[1]  quota counter for the request's period (as in check_and_reserve)
-- KEYS[2]  the customer's pending usage hash
-- KEYS[3]  idempotency marker for the request's Idempotency-Key ("" if none sent)
-- ARGV[1]  "1" if check_and_reserve already billed the units (optimistically)
-- ARGV[2]  "1" if the response makes the request billable (2xx, not HEAD/OPTIONS)
-- ARGV[3]  cost: quota units reserved for the request
-- ARGV[4]  usage field: "u|<hour>|<key id>|<endpoint>"
-- ARGV[5]  ms the usage hash is kept if never flushed (a safety net)
-- ARGV[6]  seconds an Idempotency-Key is remembered (24 h)
--
-- Returns {billed, used}
--   billed  1 when the request counts as usage, 0 when it does not
--   used    quota units used in the period after settling
--
-- A retry (an Idempotency-Key this customer already sent successfully) is
-- served but not billed. The marker is set only by a billable success, so a
-- failed first attempt leaves the retry billable.
assert(#KEYS == 3, "settle: expected 3 keys")
assert(#ARGV == 6, "settle: expected 6 arguments")

local billed_at_check = ARGV[1] == "1"
local billable = ARGV[2] == "1"
local cost = tonumber(ARGV[3])

if billable and KEYS[3] ~= "" then
  if not redis.call("SET", KEYS[3], "1", "NX", "EX", tonumber(ARGV[6])) then
    billable = false
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
