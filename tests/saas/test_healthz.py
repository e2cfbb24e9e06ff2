from django.test import override_settings

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
UNREACHABLE_CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": UNREACHABLE_REDIS,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


def test_it_answers_ok_without_a_key(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_it_is_never_cached(client, db):
    response = client.get("/healthz")
    assert "no-cache" in response["Cache-Control"]


# Django's test signals reset the cache handler when CACHES is overridden
# (django.test.signals.clear_cache_handlers), so the check below really talks
# to the unreachable server rather than to a connection made earlier.
@override_settings(REDIS_URL=UNREACHABLE_REDIS, CACHES=UNREACHABLE_CACHES)
def test_it_answers_503_when_redis_is_unreachable(client, db):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "redis": "unreachable"}}


def test_it_answers_503_rather_than_500_when_redis_fails_oddly(client, db, monkeypatch):
    def broken_connection(alias):
        raise RuntimeError("not a connection error")

    monkeypatch.setattr("saas.health.get_redis_connection", broken_connection)
    # The test client re-raises any exception a view lets escape, so a 500 would fail here.
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unreachable"


def test_it_answers_503_when_the_database_is_unreachable(client, db, monkeypatch):
    class BrokenConnection:
        def cursor(self):
            raise RuntimeError("database down")

    monkeypatch.setattr("saas.health.connection", BrokenConnection())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unreachable", "redis": "ok"}


def test_it_refuses_post(client, db):
    assert client.post("/healthz").status_code == 405


def test_it_answers_head(client, db):
    response = client.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""


CLUSTER = {"state": "ok", "slots_ok": 16384, "primaries": 3, "primaries_answering": 3}


def test_on_a_redis_cluster_it_reports_the_clusters_state(client, db, on_redis_cluster):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "redis_cluster": CLUSTER}


def test_on_a_redis_cluster_a_primary_down_is_a_503_with_the_clusters_state(
    client, db, private_redis_cluster
):
    assert client.get("/healthz").status_code == 200  # the client knows every node
    private_redis_cluster.kill(1)
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"] == "degraded"
    assert checks["redis_cluster"]["primaries_answering"] == 2
