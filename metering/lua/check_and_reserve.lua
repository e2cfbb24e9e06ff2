-- Check a customer's burst and quota, reserve `cost` units in both, and
-- (usually) bill them, atomically: the one Redis round trip of a request.
--
-- KEYS[1]  burst state: the GCRA theoretical arrival time (TAT), ms since epoch
-- KEYS[2]  quota counter for the current period: units used
-- KEYS[3]  the customer's pending usage hash (moved to PostgreSQL by the flush)
-- The customer's limits first (the caller sends them unchanged all period):
-- ARGV[1]  burst, requests per second (>= 1)
-- ARGV[2]  quota, units per period (>= 1)
-- ARGV[3]  ceiling: most units admitted in the period; the quota on a hard
--          tier, quota plus the spending cap's units on an overage tier with
--          a cap, "-1" for overage without a cap
-- ARGV[4]  when the quota counter may expire, ms since epoch (period end
--          plus slack)
-- ARGV[5]  ms the pending usage hash is kept if the flush never runs
-- then this request:
-- ARGV[6]  now, ms since epoch (the caller's clock: Redis never reads its own)
-- ARGV[7]  cost of this request, units (>= 0; 0 is limited by the burst only)
-- ARGV[8]  seed for a missing quota counter: units already used this period
--          according to the database, or "-1" to ask the caller for one
-- ARGV[9]  usage field "u|<hour>|<key id>|<endpoint>" to bill the units to now,
--          or "" to only reserve them (the caller settles after the response)
-- ARGV[10] deadline: the latest time by Redis's clock (ms since epoch) this
--          call may still run at, "0" for none. Past it the caller has given
--          up (its read timed out and it answered 503): the call must change
--          nothing, or a request refused would be billed.
-- ARGV[11] witness "<slot>|<token>", or "" for none: the slot names the
--          calling thread, the token this call. When it bills, the token is
--          left in the pending hash under "w|<slot>" (one field per thread
--          serving the customer, replaced by its next call), so a caller
--          whose reply never came (Redis stalled after running the call,
--          before writing the reply) can cancel it (cancel_check.lua).
--
-- A refusal (reason 1 or 2) is counted in the pending hash as it happens,
-- "r|<UTC hour>|429" += 1, so the dashboard shows it within seconds: a refused
-- request already costs this round trip, and an admitted one pays nothing.
--
-- Returns a status reply "<reason> <used> <burst_remaining> <burst_wait_ms>"
--   reason           0 admitted, 1 denied by burst, 2 denied by quota,
--                    3 the counter is missing and ARGV[8] was "-1": nothing
--                    was written; call again with the period's usage as seed
--                    4 past its deadline: nothing was written
--   used             quota units used in the period after this call
--   burst_remaining  requests the burst allows right now after this call
--   burst_wait_ms    when denied by burst: ms until a retry fits;
--                    otherwise: ms until the burst is whole again
-- One line rather than an array: it is the cheapest reply for the client to
-- read, and a request's whole Python cost is what this script is measured by.
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
-- Each redis.call costs Redis more than all the arithmetic here, so the hot
-- path makes as few as it can: MGET, SET, INCRBY, and HINCRBY when billing.
--
-- Billing at admission is optimistic: most requests succeed, so they need no
-- second round trip; the few that fail are unbilled by settle.lua.
if #KEYS ~= 3 then return redis.error_reply("check_and_reserve: expected 3 keys") end
if #ARGV ~= 11 then return redis.error_reply("check_and_reserve: expected 11 arguments") end

if ARGV[10] ~= "0" then
  local clock = redis.call("TIME")
  if clock[1] * 1000 + math.floor(clock[2] / 1000) > tonumber(ARGV[10]) then
    return redis.status_reply("4 0 0 0")
  end
end

local burst = tonumber(ARGV[1])
local ceiling = tonumber(ARGV[3])
local now = tonumber(ARGV[6])
local cost = tonumber(ARGV[7])
local window = 1000 * burst  -- one second, in ticks

local state = redis.call("MGET", KEYS[1], KEYS[2])
local tat = tonumber(state[1]) or now
local ahead = math.max(0, math.floor((tat - now) * burst + 0.5))
local new_ahead = ahead + 1000  -- the burst counts requests; cost is in quota units
-- A counter missing mid-period (Redis restarted or evicted it) would hand the
-- customer a fresh quota; the caller seeds it from the billed usage instead.
local used = tonumber(state[2])
local counter_exists = used ~= nil
if not counter_exists then
  if ARGV[8] == "-1" then
    return redis.status_reply("3 0 0 0")
  end
  used = tonumber(ARGV[8])
end

-- Counts the refusal (see above) and returns its reply.
local function refuse(reply)
  local field = string.format("r|%d|429", math.floor(now / 3600000) * 3600)
  if redis.call("HINCRBY", KEYS[3], field, 1) == 1 then
    redis.call("PEXPIRE", KEYS[3], ARGV[5])
  end
  return redis.status_reply(reply)
end

if new_ahead > window then
  return refuse(string.format("1 %d %d %d", used, math.floor((window - ahead) / 1000), math.ceil((new_ahead - window) / burst)))
end
-- A request of cost 0 takes no quota, so no quota refuses it: after a
-- downgrade `used` may already exceed the ceiling, and the usage API must answer.
if cost > 0 and ceiling >= 0 and used + cost > ceiling then
  return refuse(string.format("2 %d %d %d", used, math.floor((window - ahead) / 1000), math.ceil(ahead / burst)))
end

-- %.3f, not tostring: Lua's default %.14g would round a ms timestamp.
local wait = math.ceil(new_ahead / burst)
redis.call("SET", KEYS[1], string.format("%.3f", now + new_ahead / burst), "PX", wait + 1)
if counter_exists then
  used = redis.call("INCRBY", KEYS[2], cost)  -- keeps the TTL it was made with
else
  used = used + cost
  redis.call("SET", KEYS[2], used, "PX", math.max(1, tonumber(ARGV[4]) - now))
end
-- The hash is renewed whenever a field is new (at least every hour of traffic),
-- not on every bill: one command fewer on the hot path.
if ARGV[9] ~= "" then
  if redis.call("HINCRBY", KEYS[3], ARGV[9], cost) == cost then
    redis.call("PEXPIRE", KEYS[3], ARGV[5])
  end
  if ARGV[11] ~= "" then
    local bar = string.find(ARGV[11], "|", 1, true)
    redis.call("HSET", KEYS[3], "w|" .. string.sub(ARGV[11], 1, bar - 1), string.sub(ARGV[11], bar + 1))
  end
end
return redis.status_reply(string.format("0 %d %d %d", used, math.floor((window - new_ahead) / 1000), wait))
