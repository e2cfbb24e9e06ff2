"""Cost sampling: the middleware measures what each API request costs to serve."""

import time

import pytest
from django.db.models import Sum
from django.test import override_settings

from metering import middleware
from metering.cost import CPU_BUCKETS_MS, CostSample, third_party_call
from metering.flush import flush_usage
from metering.models import EndpointCost, UsageRecord

ECHO = "/api/v1/echo"
PRIMES = "/api/v1/primes?below=2000000"
TIMEZONES = "/api/v1/timezones"


def measured(endpoint: str) -> dict[str, int]:
    """The flushed cost totals of one endpoint, by metric (summed over hours)."""
    rows = EndpointCost.objects.filter(endpoint=endpoint).values("metric").annotate(total=Sum("value"))
    return {row["metric"]: row["total"] for row in rows}


def billed_units() -> int:
    return UsageRecord.objects.aggregate(total=Sum("count"))["total"] or 0


def test_an_api_request_records_a_cost_sample(key_client):
    response = key_client.get(ECHO, {"msg": "hi"})
    assert response.status_code == 200
    flush_usage()

    costs = measured("api:echo")
    buckets = {metric: value for metric, value in costs.items() if metric.startswith("cpu_b")}
    assert costs["requests"] == 1
    assert costs["cpu_us"] > 0
    assert costs["bytes_out"] == len(response.content)
    assert costs["third_party_calls"] == 0
    assert list(buckets.values()) == [1]


def test_the_sample_lands_in_the_bucket_of_its_cpu_time(key_client):
    key_client.get(ECHO)
    flush_usage()

    costs = measured("api:echo")
    bucket = CostSample(cpu_ms=costs["cpu_us"] / 1000).histogram_bucket()
    assert costs[f"cpu_b{bucket}"] == 1


def test_each_sampled_request_adds_to_the_totals(key_client):
    sizes = [len(key_client.get(ECHO, {"msg": "x" * n}).content) for n in (1, 100, 500)]
    flush_usage()

    costs = measured("api:echo")
    assert costs["requests"] == 3
    assert costs["bytes_out"] == sum(sizes)
    assert sum(value for metric, value in costs.items() if metric.startswith("cpu_b")) == 3


def test_the_prime_sieve_shows_more_cpu_ms_than_echo(key_client):
    # The sieve first, so it also absorbs any first-request warm-up.
    assert key_client.get(PRIMES).status_code == 200
    assert key_client.get(ECHO).status_code == 200
    flush_usage()

    primes_cpu_us = measured("api:primes")["cpu_us"]
    echo_cpu_us = measured("api:echo")["cpu_us"]
    assert primes_cpu_us > echo_cpu_us
    assert primes_cpu_us > 10_000  # a sieve to two million takes well over 10 ms


def test_the_time_zone_list_shows_more_kb_out_than_echo(key_client):
    timezones = key_client.get(TIMEZONES)
    echo = key_client.get(ECHO)
    flush_usage()

    assert measured("api:timezones")["bytes_out"] == len(timezones.content)
    assert measured("api:echo")["bytes_out"] == len(echo.content)
    assert len(timezones.content) > 10 * 1024 > len(echo.content)


@pytest.mark.urls("tests.metering.urls")
def test_third_party_calls_made_inside_a_view_are_counted(key_client):
    assert key_client.get("/api/v1/geocode").status_code == 200
    assert key_client.get("/api/v1/geocode").status_code == 200
    flush_usage()

    costs = measured("geocode")
    assert (costs["requests"], costs["third_party_calls"]) == (2, 4)


def test_a_third_party_call_outside_a_request_is_not_counted_later(key_client):
    with third_party_call("x"):
        pass
    key_client.get(ECHO)
    flush_usage()

    assert measured("api:echo")["third_party_calls"] == 0


@pytest.mark.urls("tests.metering.urls")
def test_cpu_time_is_the_threads_cpu_not_wall_time(key_client):
    started = time.monotonic()
    assert key_client.get("/api/v1/sleepy").status_code == 200
    assert time.monotonic() - started >= 0.2
    flush_usage()

    assert measured("sleepy")["cpu_us"] < 100_000


@override_settings(COST_SAMPLE_RATE=0)
def test_a_zero_sample_rate_records_no_samples_but_still_bills(key_client):
    assert key_client.get(ECHO).status_code == 200
    flush_usage()

    assert not EndpointCost.objects.exists()
    assert billed_units() == 1


@override_settings(COST_SAMPLE_RATE=0.5)
@pytest.mark.parametrize(("draw", "sampled"), [(0.49, 1), (0.5, 0), (0.9, 0)])
def test_a_request_is_sampled_when_its_draw_is_under_the_rate(key_client, monkeypatch, draw, sampled):
    monkeypatch.setattr(middleware.random, "random", lambda: draw)
    key_client.get(ECHO)
    flush_usage()

    assert measured("api:echo").get("requests", 0) == sampled
    assert billed_units() == 1


def test_a_failed_request_is_sampled_but_not_billed(key_client):
    response = key_client.get("/api/v1/primes?below=1")
    assert response.status_code == 400
    flush_usage()

    costs = measured("api:primes")
    assert costs["requests"] == 1
    assert costs["bytes_out"] == len(response.content)
    assert billed_units() == 0


@pytest.mark.parametrize(
    ("cpu_ms", "bucket"),
    [
        (0, 0),
        (0.1, 0),  # an edge is the top of its own bucket
        (0.1001, 1),
        (0.25, 1),
        (1, 3),
        (1.5, 4),
        (2500, len(CPU_BUCKETS_MS) - 1),
        (2500.001, len(CPU_BUCKETS_MS)),  # the open bucket
        (60_000, len(CPU_BUCKETS_MS)),
    ],
)
def test_histogram_bucket_edges(cpu_ms, bucket):
    assert CostSample(cpu_ms=cpu_ms).histogram_bucket() == bucket
