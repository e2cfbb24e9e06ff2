"""The default cache on Redis Cluster: a django-redis connection factory.

django-redis 7 builds a `redis.Redis` on a connection pool per URL and has no
cluster client. This factory gives it redis-py's `RedisCluster` instead, made
from the one node REDIS_URL names (the others are discovered), with the same
timeouts. django-redis's commands then run unchanged: each goes to its key's
slot, FLUSHDB and SCAN to every primary. One `RedisCluster` per URL and
process, as django-redis keeps one pool per URL: Django makes a cache client
per thread, and the limiter's breaker (core.breaker) is per client.
"""

import threading

from django_redis.pool import ConnectionFactory
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

# Redis out of reach, on a single Redis or a cluster: a node refused or timed
# out; the cluster lost a master and refuses every slot (CLUSTERDOWN, once its
# nodes notice); or no node serves the key's slot in the client's map.
# RedisClusterException: no node of REDIS_URL answers, so the client cannot
# even be made (a process started after REDIS_URL's node failed over).
REDIS_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    SlotNotCoveredError,
    RedisClusterException,
)


class ClusterConnectionFactory(ConnectionFactory):
    _clusters: dict[str, RedisCluster] = {}
    _lock = threading.Lock()

    def connect(self, url: str) -> RedisCluster:
        client = self._clusters.get(url)
        if client is None:
            with self._lock:
                client = self._clusters.get(url)
                if client is None:
                    client = self._clusters[url] = RedisCluster.from_url(**self.cluster_params(url))
        return client

    def cluster_params(self, url: str) -> dict:
        # Not django-redis's parser class: RedisCluster keeps its own per node.
        params = self.make_connection_params(url)
        params.pop("parser_class", None)
        # No retry of a command that timed out or lost its connection: each
        # retry waits out the timeout again after re-reading the topology, so
        # a stalled node would hold a request a second or more instead of one
        # timeout (the breaker and a 503 answer it, as on a single Redis, whose
        # client does not retry either). MOVED and ASK redirections, the
        # topology changes of a failover, are followed all the same.
        params["retry"] = Retry(NoBackoff(), 0)
        return params

    def disconnect(self, connection: RedisCluster) -> None:
        connection.disconnect_connection_pools()


def connection_settings(client) -> dict:
    """The keyword arguments `client` makes its connections with: its pool's,
    or on Redis Cluster (no pool of its own) those of every node's."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        return pool.connection_kwargs
    return getattr(getattr(client, "nodes_manager", None), "connection_kwargs", {})


def is_cluster(client) -> bool:
    """A RedisCluster, or a wrapper of one: it has a nodes manager."""
    return getattr(client, "nodes_manager", None) is not None
