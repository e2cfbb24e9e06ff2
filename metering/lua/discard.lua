-- Step 3 of the usage flush: delete a snapshot once its batch is in PostgreSQL.
--
-- KEYS[1]  the snapshot hash
-- ARGV[1]  the batch id just applied
--
-- Deletes only if the snapshot still carries that batch: meanwhile a
-- concurrent flush may have finished it and snapshotted newer usage under the
-- same key, and deleting that would lose it. Compare and delete in one step,
-- on one key, so that many discards can share a pipeline (and a cluster slot).
-- Returns 1 when deleted, 0 otherwise.
assert(#KEYS == 1, "discard: expected 1 key")
assert(#ARGV == 1, "discard: expected 1 argument")

if redis.call("HGET", KEYS[1], "batch") == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
