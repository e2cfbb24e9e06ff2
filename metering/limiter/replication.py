"""Billing writes that survive a failover: WAIT for replicas after them.

Redis replicates asynchronously: a master that acknowledged a billed check
and died before its replica had it takes the unit with it, and the replica
promoted in its place never knew the request was served. With
REDIS_REPLICA_ACKS = n > 0, a billed check and the cancel of a lost one are
each followed, on the same connection and in the same round trip, by
`WAIT n timeout`: the request is served only once n replicas hold its unit.
Short of that (a replica down or lagging, or the master lost mid-call), the
check counts as unanswered: the request gets a 503 and its witness cancels
it, on whichever master then holds the slot, so the unit is billed only if
it was served, on either side of a failover. The price: the replica's
acknowledgement on every API request's path, and 503s while fewer than n
replicas answer (Redis's own min-replicas-to-write trade).
"""

from contextlib import suppress

from django.conf import settings
from redis.exceptions import AskError, MovedError, NoScriptError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.redis_cluster import is_cluster


class Unreplicated(RedisConnectionError):
    """The write ran on the master, but fewer replicas than asked have it."""


def replica_acks() -> int:
    return settings.REDIS_REPLICA_ACKS


def wait_timeout_ms() -> int:
    # Half the socket timeout: the call and its WAIT share one read.
    return max(1, int(settings.REDIS_TIMEOUT_SECONDS * 500))


def run_replicated(client, key: str, queue, source: str):
    """`queue(pipeline)` adds one script call for `key`'s slot; it runs on that
    slot's master and is followed by WAIT on the same connection. Returns the
    call's reply; raises a Redis connection error (Redis out of reach) when it
    did not run, or ran without enough replicas."""
    target = client
    if is_cluster(client):
        # The node's own client, so that the WAIT follows the call on its connection.
        target = client.nodes_manager.get_node_from_slot(client.keyslot(key)).redis_connection
    for attempt in (1, 2):
        pipeline = target.pipeline(transaction=False)
        queue(pipeline)
        pipeline.execute_command("WAIT", replica_acks(), wait_timeout_ms())
        try:
            reply, acknowledged = pipeline.execute(raise_on_error=False)
        except (RedisConnectionError, RedisTimeoutError):
            if is_cluster(client):
                _refresh_topology(client)
            raise
        if isinstance(reply, NoScriptError) and attempt == 1:
            target.script_load(source)  # a restarted or promoted master: load, then once more
            continue
        break
    if isinstance(reply, MovedError | AskError):
        if is_cluster(client):
            # The slot moved (a failover): the next call goes to its new master.
            client.nodes_manager.update_moved_exception(reply)
        raise RedisConnectionError(f"the slot moved: {reply}")
    if isinstance(reply, Exception):
        raise reply
    if isinstance(acknowledged, Exception) or acknowledged < replica_acks():
        raise Unreplicated(
            f"{acknowledged} of {replica_acks()} replicas acknowledged within {wait_timeout_ms()} ms"
        )
    return reply


def _refresh_topology(client) -> None:
    """As RedisCluster does after a node fails a command of its own: reread
    the slots, so the next call finds the replica promoted in its place. (The
    call above bypassed RedisCluster's own handling to keep its connection.)"""
    with suppress(RedisError):  # no node answers now: the breaker's next probe tries again
        client.nodes_manager.initialize()
