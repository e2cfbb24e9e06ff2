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
from redis.cluster import RedisCluster


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
        return params

    def disconnect(self, connection: RedisCluster) -> None:
        connection.disconnect_connection_pools()
