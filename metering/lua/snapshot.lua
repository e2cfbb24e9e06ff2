-- Step 1 of the usage flush: freeze a customer's pending usage for moving.
--
-- KEYS[1]  the customer's pending usage hash
-- KEYS[2]  the customer's snapshot hash (being moved to PostgreSQL)
-- ARGV[1]  a new batch id, used only when a new snapshot is taken
--
-- Returns the snapshot's batch id, or false (nil) when there is nothing to move.
-- An existing snapshot is left from a flush that stopped part way: it is
-- returned as it is, to be finished first, and no new one is taken until then.
assert(#KEYS == 2, "snapshot: expected 2 keys")
assert(#ARGV == 1, "snapshot: expected 1 argument")

local existing = redis.call("HGET", KEYS[2], "batch")
if existing then
  return existing
end
if redis.call("EXISTS", KEYS[1]) == 0 then
  return false
end
-- RENAME keeps the TTL, so an abandoned snapshot still expires eventually.
redis.call("RENAME", KEYS[1], KEYS[2])
redis.call("HSET", KEYS[2], "batch", ARGV[1])
return ARGV[1]
