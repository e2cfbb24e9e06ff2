-- Check a customer's burst and quota, reserve `cost` units in both, and
-- (usually) bill them, atomically: the one Redis round trip of a request.
--
-- KEYS[1]  burst state: the GCRA theoretical arrival time (TAT), ms since epoch
-- KEYS[2]  quota counter for the current period: units used
-- KEYS[3]  the customer's pending usage hash (moved to PostgreSQL by the flush)
-- ARGV[1]  now, ms since epoch (the caller's clock: Redis never reads its own)
-- ARGV[2]  burst, requests per second (>= 1)
-- ARGV[3]  quota, units per period (>= 1)
-- ARGV[4]  cost of this request, units (>= 1)
-- ARGV[5]  ms until the quota counter may expire (period end plus slack)
-- ARGV[6]  ceiling: most units admitted in the period; the quota on a hard
--          tier, quota plus the spending cap's units on an overage tier with
--          a cap, "-1" for overage without a cap
-- ARGV[7]  seed for a missing quota counter: units already used this period
--          according to the database, or "-1" to ask the caller for one
-- ARGV[8]  usage field "u|<hour>|<key id>|<endpoint>" to bill the units to now,
--          or "" to only reserve them (the caller settles after the response)
-- ARGV[9]  ms the pending usage hash is kept if the flush never runs
--
-- Returns {admitted, reason, used, burst_remaining, burst_wait_ms}
--   admitted         1 or 0
--   reason           0 admitted, 1 denied by burst, 2 denied by quota,
--                    3 the counter is missing and ARGV[7] was "-1": nothing
--                    was written; call again with the period's usage as seed
--   used             quota units used in the period after this call
--   burst_remaining  requests the burst allows right now after this call
--   burst_wait_ms    when denied by burst: ms until a retry fits;
--                    otherwise: ms until the burst is whole again
--
-- GCRA: each request pushes the TAT forward by 1000/burst ms; a request fits
-- while the TAT stays within one second of now, i.e. `burst` back-to-back
-- requests, refilled at `burst` per second. One key per limit, so memory does
-- not grow with the quota. Both limits are checked before either is written.
--
-- The arithmetic is in whole ticks of 1/burst ms ahead of now: TAT - now is
-- always a whole number of ticks (now is whole ms, one request is 1000 ticks),
-- so rounding to the nearest tick cancels the float error of adding 1000/burst
-- to a 1.8e12 ms timestamp and of the stored %.3f string. Without it, a burst
-- of 6 or 7 admitted one request fewer.
--
-- Billing at admission is optimistic: most requests succeed, so they need no
-- second round trip; the few that fail are unbilled by settle.lua.
assert(#KEYS == 3, "check_and_reserve: expected 3 keys")
assert(#ARGV == 9, "check_and_reserve: expected 9 arguments")

local now = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local quota = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local quota_ttl = tonumber(ARGV[5])
local ceiling = tonumber(ARGV[6])
local window = 1000 * burst  -- one second, in ticks

local tat = tonumber(redis.call("GET", KEYS[1])) or now
local ahead = math.max(0, math.floor((tat - now) * burst + 0.5))
local new_ahead = ahead + 1000  -- the burst counts requests; cost is in quota units
-- A counter missing mid-period (Redis restarted or evicted it) would hand the
-- customer a fresh quota; the caller seeds it from the billed usage instead.
local used = tonumber(redis.call("GET", KEYS[2]))
if not used then
  if ARGV[7] == "-1" then
    return {0, 3, 0, 0, 0}
  end
  used = tonumber(ARGV[7])
end

if new_ahead > window then
  return {0, 1, used, math.floor((window - ahead) / 1000), math.ceil((new_ahead - window) / burst)}
end
if ceiling >= 0 and used + cost > ceiling then
  return {0, 2, used, math.floor((window - ahead) / 1000), math.ceil(ahead / burst)}
end

-- %.3f, not tostring: Lua's default %.14g would round a ms timestamp.
local wait = math.ceil(new_ahead / burst)
redis.call("SET", KEYS[1], string.format("%.3f", now + new_ahead / burst), "PX", wait + 1)
used = used + cost
redis.call("SET", KEYS[2], used, "PX", quota_ttl)
if ARGV[8] ~= "" then
  redis.call("HINCRBY", KEYS[3], ARGV[8], cost)
  redis.call("PEXPIRE", KEYS[3], tonumber(ARGV[9]))
end
return {1, 0, used, math.floor((window - new_ahead) / 1000), wait}
