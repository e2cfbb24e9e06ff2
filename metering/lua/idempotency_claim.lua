-- Claim an Idempotency-Key for a request, or say what the key already holds:
-- the one round trip, before the check, of a request that carries a key.
--
-- KEYS[1]  the key's record, a hash in the customer's slot:
--            fingerprint, state "running" and token while the first request runs;
--            fingerprint, state "stored", status, content_type, body after a
--            2xx whose body was small enough to keep;
--            fingerprint, state "not_stored" after a 2xx whose body was not
-- ARGV[1]  the request's fingerprint (method, path, query, body digest)
-- ARGV[2]  a token naming this request, so only it finishes its claim
-- ARGV[3]  ms a claim is held while its request runs (then a retry may run)
-- ARGV[4]  deadline: the latest time by Redis's clock (ms) this call may run
--          at, "0" for none; past it the caller answered 503, and a claim
--          made now would hold the key against the client's retry
--
-- Returns an array, its first item the outcome:
--   {"claimed"}                           the key was free: now this request's
--   {"reused"}                            the key holds another fingerprint
--   {"in_use", ms}                        the first request still runs; ms left
--   {"stored", status, content_type, body}
--   {"not_stored"}
--   {"late"}                              past the deadline: nothing read or written
-- Claiming and reading in one script: two requests with one key can never
-- both be told "claimed".
assert(#KEYS == 1, "idempotency_claim: expected 1 key")
assert(#ARGV == 4, "idempotency_claim: expected 4 arguments")

if ARGV[4] ~= "0" then
  local clock = redis.call("TIME")
  if clock[1] * 1000 + math.floor(clock[2] / 1000) > tonumber(ARGV[4]) then
    return {"late"}
  end
end

local record = redis.call("HMGET", KEYS[1], "fingerprint", "state", "status", "content_type", "body")
if not record[1] then
  redis.call("HSET", KEYS[1], "fingerprint", ARGV[1], "state", "running", "token", ARGV[2])
  redis.call("PEXPIRE", KEYS[1], tonumber(ARGV[3]))
  return {"claimed"}
end
if record[1] ~= ARGV[1] then
  return {"reused"}
end
if record[2] == "running" then
  return {"in_use", redis.call("PTTL", KEYS[1])}
end
if record[2] == "stored" then
  return {"stored", record[3], record[4], record[5]}
end
return {"not_stored"}
