"""Quota alerts: one email at 80% and one at 100% of the quota, once per period.

Celery runs eagerly in the tests (no broker is configured), so the task the
middleware queues sends its email before the response returns.
"""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from smtplib import SMTPException

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.test import override_settings

from billing.models import Customer, Tier
from metering.alerts import quota_alert_send, thresholds_crossed
from metering.cost import CostSample
from metering.limiter import Limits, get_limiter
from metering.models import QuotaAlert
from metering.tasks import send_quota_alert
from metering.usage import settle

ECHO = "/api/v1/echo"
TOO_LONG = {"msg": "x" * 1001}
PERIOD = datetime(2026, 11, 1, tzinfo=UTC)
NEXT_PERIOD = datetime(2026, 12, 1, tzinfo=UTC)
FAILING_BACKEND = "tests.metering.test_alerts.FailingBackend"


class FailingBackend(BaseEmailBackend):
    """An SMTP server that refuses every message."""

    def send_messages(self, messages):
        raise SMTPException("451 try again later")


def month_start() -> datetime:
    return datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def limit_to(customer, quota: int) -> None:
    """Set the quota (and a burst that never interferes) before any request."""
    Customer.objects.filter(pk=customer.pk).update(quota_override=quota, burst_override=1000)


def subjects(mailoutbox) -> list[str]:
    return [message.subject for message in mailoutbox]


def send(customer, threshold: int = 80, period_start: datetime = PERIOD) -> bool:
    return quota_alert_send(customer_id=customer.pk, period_start=period_start, threshold=threshold)


def test_reaching_80_percent_crosses_80():
    assert thresholds_crossed(quota=10, used_before=7, used_after=8) == [80]


def test_staying_above_80_percent_crosses_nothing():
    assert thresholds_crossed(quota=10, used_before=8, used_after=9) == []


def test_staying_below_80_percent_crosses_nothing():
    assert thresholds_crossed(quota=1000, used_before=798, used_after=799) == []


def test_reaching_the_quota_crosses_100():
    assert thresholds_crossed(quota=10, used_before=9, used_after=10) == [100]


def test_going_past_the_quota_after_reaching_it_crosses_nothing():
    assert thresholds_crossed(quota=10, used_before=10, used_after=11) == []


def test_one_expensive_call_can_cross_both_thresholds():
    assert thresholds_crossed(quota=10, used_before=7, used_after=10) == [80, 100]


def test_a_call_that_jumps_over_80_percent_crosses_it():
    assert thresholds_crossed(quota=1000, used_before=798, used_after=801) == [80]


def test_80_percent_of_a_quota_that_is_not_a_multiple_of_five_rounds_up():
    # 80% of 7 is 5.6: the 6th unit crosses it, the 5th does not.
    assert thresholds_crossed(quota=7, used_before=4, used_after=5) == []
    assert thresholds_crossed(quota=7, used_before=5, used_after=6) == [80]


def test_a_quota_of_one_crosses_both_at_once():
    assert thresholds_crossed(quota=1, used_before=0, used_after=1) == [80, 100]


def test_an_alert_is_emailed_to_the_customer(customer, mailoutbox):
    send(customer)
    assert [message.to for message in mailoutbox] == [["alice@example.com"]]


def test_the_80_percent_alert_says_so(customer, mailoutbox):
    send(customer, 80)
    assert subjects(mailoutbox) == ["You have used 80% of your API quota"]


def test_the_100_percent_alert_says_the_quota_is_used_up(customer, mailoutbox):
    send(customer, 100)
    assert subjects(mailoutbox) == ["You have used all of your API quota"]


def test_the_email_names_the_tier_and_the_quota(customer, mailoutbox):
    send(customer)
    assert "Your Free plan includes 1000 requests per month" in mailoutbox[0].body


def test_the_email_gives_the_customers_own_quota(customer, mailoutbox):
    Customer.objects.filter(pk=customer.pk).update(quota_override=2500)
    send(customer)
    assert "includes 2500 requests" in mailoutbox[0].body


def test_the_100_percent_email_of_a_hard_quota_warns_of_429(customer, mailoutbox):
    send(customer, 100)
    assert "refused with 429" in mailoutbox[0].body


def test_the_100_percent_email_of_a_tier_with_overage_warns_of_overage(customer, mailoutbox):
    Tier.objects.filter(slug="free").update(overage_price_per_1000=Decimal("0.50"))
    send(customer, 100)
    assert "billed as overage" in mailoutbox[0].body


def test_an_alert_is_recorded(customer):
    send(customer)
    assert list(QuotaAlert.objects.values_list("customer", "period_start", "threshold")) == [
        (customer.pk, PERIOD, 80)
    ]


def test_a_threshold_is_emailed_once_per_period(customer, mailoutbox):
    assert [send(customer), send(customer)] == [True, False]
    assert len(mailoutbox) == 1


def test_80_and_100_percent_are_emailed_separately(customer, mailoutbox):
    send(customer, 80)
    send(customer, 100)
    assert len(mailoutbox) == 2


def test_a_threshold_is_emailed_again_in_a_new_period(customer, mailoutbox):
    send(customer, 80, PERIOD)
    send(customer, 80, NEXT_PERIOD)
    assert len(mailoutbox) == 2


def test_another_customer_gets_their_own_alert(customer, other_customer, mailoutbox):
    send(customer)
    send(other_customer)
    assert [message.to for message in mailoutbox] == [["alice@example.com"], ["bob@example.com"]]


def test_a_customer_without_an_email_address_gets_no_alert(customer, mailoutbox):
    customer.user.email = ""
    customer.user.save()
    assert send(customer) is False
    assert (mailoutbox, QuotaAlert.objects.count()) == ([], 0)


def test_an_unknown_customer_gets_no_alert(db, mailoutbox):
    assert quota_alert_send(customer_id=999_999, period_start=PERIOD, threshold=80) is False


@override_settings(EMAIL_BACKEND=FAILING_BACKEND)
def test_a_failed_email_raises_for_the_task_to_retry(customer):
    with pytest.raises(SMTPException):
        send(customer)


def send_with_smtp_down(customer) -> None:
    with override_settings(EMAIL_BACKEND=FAILING_BACKEND), pytest.raises(SMTPException):
        send(customer)


def test_a_failed_email_leaves_no_alert_recorded(customer):
    send_with_smtp_down(customer)
    assert QuotaAlert.objects.count() == 0


def test_a_retry_after_a_failed_email_sends_it(customer, mailoutbox):
    send_with_smtp_down(customer)
    assert send(customer) is True
    assert len(mailoutbox) == 1


def test_the_celery_task_sends_the_alert(customer, mailoutbox):
    assert send_quota_alert.delay(customer.pk, PERIOD.isoformat(), 80).get() is True
    assert subjects(mailoutbox) == ["You have used 80% of your API quota"]


def test_the_celery_task_retries_on_an_smtp_error():
    assert SMTPException in send_quota_alert.autoretry_for


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_of_one_alert_email_once(customer, mailoutbox):
    barrier, results = threading.Barrier(4), []

    def run():
        try:
            barrier.wait()
            results.append(send(customer))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (sorted(results), len(mailoutbox)) == ([False, False, False, True], 1)


def test_requests_below_80_percent_send_no_alert(key_client, customer, mailoutbox):
    limit_to(customer, 5)
    for _ in range(3):
        key_client.get(ECHO)
    assert mailoutbox == []


def test_the_request_that_reaches_80_percent_sends_the_alert(key_client, customer, mailoutbox):
    limit_to(customer, 5)
    for _ in range(4):
        key_client.get(ECHO)
    assert subjects(mailoutbox) == ["You have used 80% of your API quota"]


def test_reaching_80_then_100_percent_sends_one_email_each(key_client, customer, mailoutbox):
    limit_to(customer, 5)
    for _ in range(7):
        key_client.get(ECHO)
    assert subjects(mailoutbox) == [
        "You have used 80% of your API quota",
        "You have used all of your API quota",
    ]


def test_the_alert_is_recorded_for_the_current_period(key_client, customer):
    limit_to(customer, 1)
    key_client.get(ECHO)
    assert set(QuotaAlert.objects.values_list("period_start", "threshold")) == {
        (month_start(), 80),
        (month_start(), 100),
    }


def test_failed_requests_send_no_alert(key_client, customer, mailoutbox):
    limit_to(customer, 5)
    for _ in range(6):
        key_client.get(ECHO, TOO_LONG)
    assert mailoutbox == []


def test_a_retry_with_a_seen_idempotency_key_sends_no_alert(key_client, customer, mailoutbox):
    limit_to(customer, 5)
    for _ in range(6):
        key_client.get(ECHO, HTTP_IDEMPOTENCY_KEY="order-1")
    assert mailoutbox == []


def test_crossing_80_percent_again_after_refunds_sends_no_second_email(key_client, customer, mailoutbox):
    limit_to(customer, 5)
    for _ in range(4):
        key_client.get(ECHO)
    assert QuotaAlert.objects.filter(threshold=80).count() == 1
    in_flight = reserve(customer, quota=5)  # another request in flight: 5 of 5 reserved
    settle_as(in_flight, billable=False)  # it fails and gives its unit back: 4 of 5
    send(customer, 80, month_start())  # a late duplicate of the 80% task
    assert subjects(mailoutbox) == ["You have used 80% of your API quota"]


def test_the_100_percent_alert_of_a_tier_with_overage_is_sent_once(key_client, customer, mailoutbox):
    Tier.objects.filter(slug="free").update(overage_price_per_1000=Decimal("0.50"))
    limit_to(customer, 2)
    for _ in range(5):
        assert key_client.get(ECHO).status_code == 200
    assert subjects(mailoutbox) == [
        "You have used 80% of your API quota",
        "You have used all of your API quota",
    ]


def reserve(customer, *, quota: int):
    """What another worker's throttle does: reserve one unit (its request is in flight)."""
    start = month_start()
    limits = Limits(
        customer_id=customer.pk,
        burst=1000,
        quota=quota,
        period_start=start,
        period_end=(start + timedelta(days=32)).replace(day=1),
    )
    decision = get_limiter().check(limits, now_ms=int(datetime.now(UTC).timestamp() * 1000))
    assert decision.admitted
    return decision


def settle_as(decision, *, billable: bool):
    return settle(
        decision,
        billable=billable,
        key_id=0,
        endpoint="api:echo",
        cost=1,
        idempotency_key=None,
        sample=CostSample(),
    )


@pytest.mark.xfail(
    strict=True,
    reason="Bug: the middleware detects a crossing from the quota counter, which includes other "
    "requests still in flight; when one of them reserved the unit that reaches 80% and then "
    "fails, the crossing is never seen (metering/middleware.py, _settle).",
)
def test_80_percent_is_alerted_when_a_request_in_flight_is_refunded(key_client, customer, mailoutbox):
    limit_to(customer, 10)
    for _ in range(7):
        key_client.get(ECHO)
    in_flight = reserve(customer, quota=10)  # 8 reserved
    key_client.get(ECHO)  # reserves the 9th, billed: 8 billed, counter 9
    settle_as(in_flight, billable=False)  # the in-flight one fails: 8 of 10 billed
    assert subjects(mailoutbox) == ["You have used 80% of your API quota"]
