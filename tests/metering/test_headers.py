"""RateLimit-* and X-RateLimit-* headers: on every response that went through the limiter."""

import math
from datetime import UTC, datetime, timedelta

from apikeys.context import customer_key_contexts, invalidate_key_contexts
from metering.limiter import Decision, Limits, Reason
from metering.middleware import rate_limit_headers
from plans.models import Customer
from tests.utils import month_ends

ECHO = "/api/v1/echo"
RATE_LIMIT_HEADERS = (
    "RateLimit-Policy",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
# A quota period of March 2026; "now" is one minute before it ends.
MARCH = Limits(
    customer_id=1,
    burst=5,
    quota=1000,
    period_start=datetime(2026, 3, 1, tzinfo=UTC),
    period_end=datetime(2026, 4, 1, tzinfo=UTC),
)
ONE_MINUTE_BEFORE_APRIL_MS = int(datetime(2026, 3, 31, 23, 59, tzinfo=UTC).timestamp() * 1000)


def month_bounds(now: float) -> tuple[float, float]:
    start = datetime.fromtimestamp(now, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.timestamp(), (start + timedelta(days=32)).replace(day=1).timestamp()


def limit_to(customer, quota: int) -> None:
    """Set the quota (and a burst that never interferes) before any request."""
    Customer.objects.filter(pk=customer.pk).update(quota_override=quota, burst_override=1000)


def headers_for(reason: Reason, *, used: int, burst_left: int, wait_ms: int) -> dict[str, str]:
    """The headers for a decision on MARCH's limits, one minute before April."""
    decision = Decision(MARCH, ONE_MINUTE_BEFORE_APRIL_MS, reason, used, burst_left, wait_ms)
    return rate_limit_headers(decision)


def limit_remaining_reset(headers) -> tuple[str, str, str]:
    return headers["RateLimit-Limit"], headers["RateLimit-Remaining"], headers["RateLimit-Reset"]


def test_an_admitted_response_has_every_rate_limit_header(key_client):
    response = key_client.get(ECHO)
    assert response.status_code == 200
    assert all(response.has_header(name) for name in RATE_LIMIT_HEADERS)


def test_the_policy_names_both_the_burst_and_the_quota(key_client, clock):
    start, end = month_bounds(clock.now)
    policy = key_client.get(ECHO)["RateLimit-Policy"]
    assert policy == f'5;w=1;name="burst", 1000;w={round(end - start)};name="quota"'


def test_a_fresh_free_key_is_told_about_its_burst(key_client, clock):
    assert limit_remaining_reset(key_client.get(ECHO)) == ("5", "4", "1")


def test_remaining_counts_down_with_each_request(key_client, clock):
    remaining = [key_client.get(ECHO)["RateLimit-Remaining"] for _ in range(5)]
    assert remaining == ["4", "3", "2", "1", "0"]


def test_the_x_ratelimit_headers_agree_with_the_ratelimit_headers(key_client, clock):
    response = key_client.get(ECHO)
    assert response["X-RateLimit-Limit"] == response["RateLimit-Limit"]
    assert response["X-RateLimit-Remaining"] == response["RateLimit-Remaining"]
    assert int(response["X-RateLimit-Reset"]) == math.ceil(clock.now) + int(response["RateLimit-Reset"])


def test_the_quota_is_described_when_it_has_fewer_requests_left(
    key_client, customer, clock, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        Customer.objects.filter(pk=customer.pk).update(quota_override=3, burst_override=1000)
        invalidate_key_contexts(customer_key_contexts([customer.pk]))
    _, end = month_bounds(clock.now)
    assert limit_remaining_reset(key_client.get(ECHO)) == ("3", "2", str(math.ceil(end - clock.now)))


def test_an_admitted_response_has_no_retry_after(key_client):
    assert not key_client.get(ECHO).has_header("Retry-After")


def test_a_429_has_every_rate_limit_header_and_retry_after(key_client, clock):
    for _ in range(5):
        key_client.get(ECHO)
    response = key_client.get(ECHO)
    assert response.status_code == 429
    assert all(response.has_header(name) for name in RATE_LIMIT_HEADERS)
    assert response["Retry-After"] == str(response.json()["retry_after"])
    assert (response["RateLimit-Limit"], response["RateLimit-Remaining"]) == ("5", "0")


def test_a_401_carries_no_rate_limit_headers(api_client, revoked_key):
    responses = [api_client.get(ECHO), api_client.get(ECHO, HTTP_X_API_KEY=revoked_key.raw_key)]
    assert [response.status_code for response in responses] == [401, 401]
    assert not [name for response in responses for name in response.headers if "ratelimit" in name.lower()]


def test_a_burst_refusal_describes_the_burst():
    headers = headers_for(Reason.BURST, used=10, burst_left=0, wait_ms=200)
    assert limit_remaining_reset(headers) == ("5", "0", "1")
    assert headers["Retry-After"] == "1"


def test_a_quota_refusal_describes_the_quota_even_with_burst_left():
    headers = headers_for(Reason.QUOTA, used=1000, burst_left=4, wait_ms=200)
    assert limit_remaining_reset(headers) == ("1000", "0", "60")
    assert headers["Retry-After"] == "60"


def test_an_admission_describes_the_quota_when_it_has_fewer_left():
    headers = headers_for(Reason.ADMITTED, used=998, burst_left=4, wait_ms=200)
    assert limit_remaining_reset(headers) == ("1000", "2", "60")


def test_an_admission_describes_the_burst_when_it_has_fewer_left():
    headers = headers_for(Reason.ADMITTED, used=10, burst_left=1, wait_ms=800)
    assert limit_remaining_reset(headers) == ("5", "1", "1")


def test_an_admission_has_no_retry_after():
    headers = headers_for(Reason.ADMITTED, used=10, burst_left=1, wait_ms=800)
    assert "Retry-After" not in headers


def test_x_ratelimit_reset_is_a_unix_time():
    headers = headers_for(Reason.QUOTA, used=1000, burst_left=4, wait_ms=200)
    assert headers["X-RateLimit-Reset"] == str(int(datetime(2026, 4, 1, tzinfo=UTC).timestamp()))


def test_the_policy_gives_the_quota_window_in_seconds():
    headers = headers_for(Reason.ADMITTED, used=10, burst_left=1, wait_ms=800)
    assert headers["RateLimit-Policy"] == '5;w=1;name="burst", 1000;w=2678400;name="quota"'


# At the edges of the calendar, with the clock stopped there (time-machine):
# through the real request path, so the throttle's own clock is the one read.


@month_ends()
def test_the_quota_window_at_a_month_end_is_that_months_real_length(key_client, time_machine, edge):
    time_machine.move_to(edge.moment, tick=False)
    policy = key_client.get(ECHO)["RateLimit-Policy"]
    assert policy == f'5;w=1;name="burst", 1000;w={edge.seconds};name="quota"'


@month_ends()
def test_a_quota_refusal_at_a_month_end_is_retried_when_the_month_ends(
    key_client, customer, time_machine, edge
):
    limit_to(customer, 1)
    time_machine.move_to(edge.moment, tick=False)
    key_client.get(ECHO)
    refused = key_client.get(ECHO)
    assert refused.status_code == 429
    assert (refused["Retry-After"], refused["RateLimit-Reset"]) == ("30", "30")
    assert refused["X-RateLimit-Reset"] == str(int(edge.month_end.timestamp()))


@month_ends()
def test_the_first_request_of_the_next_month_gets_a_fresh_quota_and_that_months_window(
    key_client, customer, time_machine, edge
):
    limit_to(customer, 1)
    time_machine.move_to(edge.moment, tick=False)
    key_client.get(ECHO)
    time_machine.move_to(edge.month_end, tick=False)
    response = key_client.get(ECHO)
    assert response.status_code == 200
    assert response["RateLimit-Policy"].endswith(f'1;w={edge.next_seconds};name="quota"')
    assert response["RateLimit-Reset"] == str(edge.next_seconds)
