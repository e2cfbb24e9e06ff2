-- Check a customer's burst and quota, and reserve `cost` units in both, atomically.
--
-- KEYS[1]  burst state: the GCRA theoretical arrival time (TAT), ms since epoch
-- KEYS[2]  quota counter for the current period: units used
-- ARGV[1]  now, ms since epoch (the caller's clock: Redis never reads its own)
-- ARGV[2]  burst, requests per second (>= 1)
-- ARGV[3]  quota, units per period (>= 1)
-- ARGV[4]  cost of this request, units (>= 1)
-- ARGV[5]  ms until the quota counter may expire (period end plus slack)
-- ARGV[6]  "1" to deny over quota (hard limit), "0" to admit it as overage
--
-- Returns {admitted, reason, used, burst_remaining, burst_wait_ms}
--   admitted         1 or 0
--   reason           0 admitted, 1 denied by burst, 2 denied by quota
--   used             quota units used in the period after this call
--   burst_remaining  requests the burst allows right now after this call
--   burst_wait_ms    when denied by burst: ms until a retry fits;
--                    otherwise: ms until the burst is whole again
--
-- GCRA: each request pushes the TAT forward by 1000/burst ms; a request fits
-- while the TAT stays within one second of now, i.e. `burst` back-to-back
-- requests, refilled at `burst` per second. One key per limit, so memory does
-- not grow with the quota. Both limits are checked before either is written.
assert(#KEYS == 2, "check_and_reserve: expected 2 keys")
assert(#ARGV == 6, "check_and_reserve: expected 6 arguments")

local now = tonumber(ARGV[1])
local interval = 1000 / tonumber(ARGV[2])
local quota = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local quota_ttl = tonumber(ARGV[5])
local hard = ARGV[6] == "1"
local window = 1000

local tat = tonumber(redis.call("GET", KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval  -- the burst counts requests; cost is in quota units
local used = tonumber(redis.call("GET", KEYS[2])) or 0

if new_tat - now > window then
  local remaining = math.floor((window - (tat - now)) / interval)
  return {0, 1, used, remaining, math.ceil(new_tat - window - now)}
end
if hard and used + cost > quota then
  return {0, 2, used, math.floor((window - (tat - now)) / interval), math.ceil(tat - now)}
end

-- %.3f, not tostring: Lua's default %.14g would round a ms timestamp.
redis.call("SET", KEYS[1], string.format("%.3f", new_tat), "PX", math.ceil(new_tat - now) + 1)
used = used + cost
redis.call("SET", KEYS[2], used, "PX", quota_ttl)
return {1, 0, used, math.floor((window - (new_tat - now)) / interval), math.ceil(new_tat - now)}
