"""Failed authentications limited per client address: 429 with Retry-After past
FAILED_AUTH_LIMIT in a window, counted in Redis (apikeys/lua/count_failure.lua)."""

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django_redis import get_redis_connection
from redis.exceptions import ResponseError

from apikeys.failures import COUNT_FAILURE, failure_counter_key
from apikeys.keys import generate_key

ECHO = "/api/v1/echo"
LIMIT = 3
# 15 s into a minute: with 60 s windows, 45 s are left.
QUARTER_PAST = datetime(2027, 3, 4, 12, 30, 15, tzinfo=UTC)
UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}
IN_PROCESS_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture(autouse=True)
def small_limit(settings, time_machine):
    settings.FAILED_AUTH_LIMIT = LIMIT
    settings.FAILED_AUTH_WINDOW_SECONDS = 60
    settings.TRUSTED_PROXY_COUNT = 0
    time_machine.move_to(QUARTER_PAST, tick=False)


def made_up_key() -> str:
    return generate_key(settings.API_KEY_PREFIX)


def bad_key_from(client, address="203.0.113.7", **headers):
    return client.get(ECHO, HTTP_X_API_KEY=made_up_key(), REMOTE_ADDR=address, **headers)


def use_up_the_limit(client, address="203.0.113.7", **headers):
    for _ in range(LIMIT):
        assert bad_key_from(client, address, **headers).status_code == 401


def test_bad_keys_up_to_the_limit_get_401(api_client, db):
    use_up_the_limit(api_client)


def test_past_the_limit_a_bad_key_gets_429_with_retry_after_and_a_json_body(api_client, db):
    use_up_the_limit(api_client)
    response = bad_key_from(api_client)
    assert response.status_code == 429
    assert response["Retry-After"] == "45"
    assert response.json() == {
        "error": "too_many_failed_authentications",
        "detail": "Too many requests with a bad API key from your address. Retry in 45 s.",
    }


def test_malformed_keys_count_too(api_client, db):
    for _ in range(LIMIT):
        api_client.get(ECHO, HTTP_X_API_KEY="tk_live_nonsense", REMOTE_ADDR="203.0.113.7")
    assert bad_key_from(api_client).status_code == 429


def test_a_missing_key_is_not_counted(api_client, db):
    for _ in range(LIMIT + 2):
        response = api_client.get(ECHO, REMOTE_ADDR="203.0.113.7")
        assert (response.status_code, response.json()["error"]) == (401, "missing_key")


def test_each_client_address_has_its_own_count(api_client, db):
    use_up_the_limit(api_client, "203.0.113.7")
    assert bad_key_from(api_client, "203.0.113.8").status_code == 401


def test_the_count_starts_again_with_the_next_window(api_client, db, time_machine):
    use_up_the_limit(api_client)
    assert bad_key_from(api_client).status_code == 429
    time_machine.move_to(QUARTER_PAST + timedelta(seconds=45))
    assert bad_key_from(api_client).status_code == 401


def test_a_refused_address_gets_429_for_a_new_key_without_any_query(
    api_client, db, django_assert_num_queries
):
    use_up_the_limit(api_client)
    assert bad_key_from(api_client).status_code == 429
    with django_assert_num_queries(0):
        assert bad_key_from(api_client).status_code == 429


def test_a_refused_address_can_still_use_a_key_the_api_knows(api_client, api_key):
    assert api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key, REMOTE_ADDR="203.0.113.7").status_code == 200
    use_up_the_limit(api_client)
    assert bad_key_from(api_client).status_code == 429
    assert api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key, REMOTE_ADDR="203.0.113.7").status_code == 200


def test_another_process_refuses_the_address_at_its_first_failure(api_client, db):
    from apikeys.failures import failed_authentications

    use_up_the_limit(api_client)
    failed_authentications.clear()  # as another process: the count is in Redis
    assert bad_key_from(api_client).status_code == 429


def test_without_trusted_proxies_x_forwarded_for_is_ignored(api_client, db):
    for number in range(LIMIT):
        bad_key_from(api_client, HTTP_X_FORWARDED_FOR=f"198.51.100.{number}")
    assert bad_key_from(api_client, HTTP_X_FORWARDED_FOR="198.51.100.99").status_code == 429


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_count(api_client, db, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    use_up_the_limit(api_client, "10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert bad_key_from(api_client, "10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429
    assert bad_key_from(api_client, "10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 401


def test_behind_a_trusted_proxy_a_forged_x_forwarded_for_entry_does_not_help(api_client, db, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    use_up_the_limit(api_client, "10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1")
    forged = "192.0.2.50, 198.51.100.1"  # the client wrote the first, our proxy the second
    assert bad_key_from(api_client, "10.0.0.1", HTTP_X_FORWARDED_FOR=forged).status_code == 429


def test_behind_two_trusted_proxies_the_client_is_the_second_entry_from_the_right(api_client, db, settings):
    settings.TRUSTED_PROXY_COUNT = 2
    use_up_the_limit(api_client, "10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.50, 198.51.100.1, 10.0.0.1")
    same_client = bad_key_from(api_client, "10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1, 10.0.0.1")
    assert same_client.status_code == 429


def test_an_ipv6_client_is_counted_by_its_64(api_client, db):
    for number in range(LIMIT):
        bad_key_from(api_client, f"2001:db8:0:7::{number + 1}")
    assert bad_key_from(api_client, "2001:db8:0:7::ffff").status_code == 429
    assert bad_key_from(api_client, "2001:db8:0:8::1").status_code == 401


def test_the_first_refusal_of_an_address_is_logged_once_as_a_warning(api_client, db, caplog):
    use_up_the_limit(api_client)
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            assert bad_key_from(api_client).status_code == 429
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.name for record in warnings] == ["apikeys.failures"]
    assert "203.0.113.7" in warnings[0].getMessage()


@override_settings(CACHES=UNREACHABLE_REDIS)
def test_with_redis_down_bad_keys_get_401_and_are_not_counted(api_client, db):
    for _ in range(LIMIT + 2):
        response = api_client.get(ECHO, HTTP_X_API_KEY="tk_live_nonsense", REMOTE_ADDR="203.0.113.7")
        assert (response.status_code, response.json()["error"]) == (401, "malformed_key")


@override_settings(CACHES=UNREACHABLE_REDIS)
def test_with_redis_down_a_failure_opens_the_default_caches_breaker_so_the_next_ones_fail_fast(
    api_client, db
):
    from core.breaker import cache_breaker

    api_client.get(
        ECHO, HTTP_X_API_KEY="tk_live_nonsense", REMOTE_ADDR="203.0.113.7"
    )  # nothing else asks Redis
    assert cache_breaker().is_open


@override_settings(REDIS_URL="", CACHES=IN_PROCESS_CACHE)
def test_without_redis_failures_are_counted_in_the_process(api_client, db):
    use_up_the_limit(api_client)
    assert bad_key_from(api_client).status_code == 429


# --- apikeys/lua/count_failure.lua, called directly ---------------------------------------------


@pytest.fixture
def redis_client(redis_layout):
    """The default cache's client, on a single Redis and on a Redis Cluster."""
    return get_redis_connection("default")


@pytest.fixture
def script(redis_client):
    return redis_client.register_script(COUNT_FAILURE)


COUNTER = failure_counter_key("203.0.113.7", 28_000_000)


def test_the_script_refuses_a_call_without_its_argument(script):
    with pytest.raises(ResponseError, match="expected 1 argument"):
        script(keys=[COUNTER], args=[])


def test_the_script_counts_each_failure(script):
    assert [script(keys=[COUNTER], args=[45_000]) for _ in range(3)] == [1, 2, 3]


def test_the_first_failure_gives_the_counter_the_windows_time_left(script, redis_client):
    script(keys=[COUNTER], args=[45_000])
    script(keys=[COUNTER], args=[60_000])  # a later failure does not extend it
    assert 44_000 < redis_client.pttl(COUNTER) <= 45_000


def test_concurrent_failures_are_all_counted(script, redis_client):
    def fail_twenty_times():
        for _ in range(20):
            script(keys=[COUNTER], args=[45_000])

    threads = [threading.Thread(target=fail_twenty_times) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert int(redis_client.get(COUNTER)) == 320
