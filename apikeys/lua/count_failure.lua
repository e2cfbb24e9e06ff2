-- Count one failed authentication from a client address (apikeys/failures.py).
--
-- KEYS[1]  the address's counter for the current window,
--          apikeys:v1:auth-failures:{<address>}:<window number>; a new window
--          is a new key, so the count starts again at every window's start
-- ARGV[1]  ms from now to the window's end: the counter's TTL, set with its
--          first failure, so the counter dies with its window
--
-- Returns the count in this window, this failure included (an integer).
-- One script: a counter is never left without its TTL, as INCR then PEXPIRE
-- in two calls would leave it when the second is lost.
assert(#KEYS == 1, "count_failure: expected 1 key")
assert(#ARGV == 1, "count_failure: expected 1 argument")

local count = redis.call("INCR", KEYS[1])
if count == 1 then
  redis.call("PEXPIRE", KEYS[1], tonumber(ARGV[1]))
end
return count
