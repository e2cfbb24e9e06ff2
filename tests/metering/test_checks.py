"""The system check that the Redis holding unflushed usage persists it
(metering/checks.py), against private redis-servers configured each way."""

import pytest
import redis
from django_redis import get_redis_connection

from metering.checks import layout_errors, persistence_warnings, redis_layout, redis_persistence
from tests.metering.test_limiter_redis_faults import RedisServer


@pytest.fixture
def server(tmp_path):
    """A private redis-server with neither AOF nor RDB (RedisServer's default)."""
    started = RedisServer(tmp_path)
    started.start()
    yield started
    started.kill()


@pytest.fixture
def client(server):
    connection = redis.Redis(port=server.port, socket_timeout=1)
    yield connection
    connection.close()


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_it_warns_about_a_redis_with_neither_aof_nor_rdb(client):
    assert ids(persistence_warnings(client)) == ["metering.W001"]


def test_it_accepts_a_redis_with_aof(client):
    client.config_set("appendonly", "yes")
    assert persistence_warnings(client) == []


def test_it_accepts_a_redis_with_rdb_snapshots(client):
    client.config_set("save", "3600 1")
    assert persistence_warnings(client) == []


def refusing_config(server, client) -> redis.Redis:
    """A connection as a user who may not run CONFIG, as on a managed Redis."""
    client.acl_setuser("app", enabled=True, nopass=True, keys=["*"], commands=["+@all", "-config"])
    return redis.Redis(port=server.port, username="app", socket_timeout=1)


def test_a_redis_refusing_config_without_aof_gets_a_warning_rather_than_a_crash(server, client):
    assert ids(persistence_warnings(refusing_config(server, client))) == ["metering.W002"]


def test_a_redis_refusing_config_with_aof_gets_no_warning(server, client):
    client.config_set("appendonly", "yes")
    assert persistence_warnings(refusing_config(server, client)) == []


def test_an_unreachable_redis_gets_a_warning_rather_than_a_crash(server, client):
    server.kill()
    assert ids(persistence_warnings(client)) == ["metering.W003"]


def test_the_check_is_silent_with_debug_on(settings):
    settings.DEBUG = True
    assert redis_persistence(None) == []


def test_with_debug_off_the_check_reads_the_projects_redis(settings):
    settings.DEBUG = False
    assert redis_persistence(None) == persistence_warnings(get_redis_connection("default"))


def test_on_a_cluster_a_primary_without_persistence_gets_a_warning(on_redis_cluster):
    """The client's default node persisting is not enough: every primary holds usage."""
    cluster = get_redis_connection("default")
    default = cluster.get_default_node().redis_connection
    default.config_set("appendonly", "yes")
    try:
        assert ids(persistence_warnings(cluster)) == ["metering.W001"]
    finally:
        default.config_set("appendonly", "no")


def test_on_a_cluster_whose_primaries_all_persist_there_is_no_warning(on_redis_cluster):
    cluster = get_redis_connection("default")
    primaries = [node.redis_connection for node in cluster.get_primaries()]
    for primary in primaries:
        primary.config_set("appendonly", "yes")
    try:
        assert persistence_warnings(cluster) == []
    finally:
        for primary in primaries:
            primary.config_set("appendonly", "no")


def test_a_cluster_nodes_url_without_redis_cluster_is_an_error(redis_cluster):
    assert ids(layout_errors(redis_cluster.url, cluster=False)) == ["metering.E001"]


def test_a_cluster_nodes_url_with_a_database_number_is_still_recognised(redis_cluster):
    url = redis_cluster.url.rsplit("/", 1)[0] + "/8"
    assert ids(layout_errors(url, cluster=False)) == ["metering.E001"]


def test_redis_cluster_on_a_redis_without_cluster_mode_is_an_error(settings):
    assert ids(layout_errors(settings.REDIS_URL, cluster=True)) == ["metering.E002"]


@pytest.mark.parametrize("layout", ["single", "cluster"])
def test_a_layout_that_matches_its_setting_is_no_error(redis_cluster, settings, layout):
    url = redis_cluster.url if layout == "cluster" else settings.REDIS_URL
    assert layout_errors(url, cluster=layout == "cluster") == []


def test_an_unreachable_redis_is_no_layout_error(server):
    server.kill()
    assert layout_errors(f"redis://127.0.0.1:{server.port}/0", cluster=True) == []


def test_the_layout_check_runs_with_debug_on(settings, redis_cluster):
    settings.DEBUG, settings.REDIS_URL, settings.REDIS_CLUSTER = True, redis_cluster.url, False
    assert ids(redis_layout(None)) == ["metering.E001"]
