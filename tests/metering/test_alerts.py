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

from metering import middleware
from metering.alerts import quota_alert_send, thresholds_reached
from metering.keys import hour_of, usage_field
from metering.limiter import Limits, get_limiter
from metering.models import QuotaAlert
from metering.tasks import send_quota_alert
from metering.usage import settle
from plans.models import Customer, Tier
from tests.utils import month_ends

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


def test_below_80_percent_reaches_nothing():
    assert thresholds_reached(quota=10, used=7) == []


def test_80_percent_reaches_80():
    assert thresholds_reached(quota=10, used=8) == [80]


def test_one_unit_short_of_80_percent_reaches_nothing():
    assert thresholds_reached(quota=1000, used=799) == []
    assert thresholds_reached(quota=1000, used=800) == [80]


def test_between_80_and_100_percent_reaches_80_only():
    assert thresholds_reached(quota=10, used=9) == [80]


def test_the_quota_reaches_both():
    assert thresholds_reached(quota=10, used=10) == [80, 100]


def test_past_the_quota_still_reaches_both():
    # Reached, not crossed: every request above a threshold reports it, and
    # the middleware and the database make sure it is sent once.
    assert thresholds_reached(quota=10, used=11) == [80, 100]


def test_nothing_used_reaches_nothing():
    assert thresholds_reached(quota=10, used=0) == []


def test_80_percent_of_a_quota_that_is_not_a_multiple_of_five_rounds_up():
    # 80% of 7 is 5.6: the 6th unit reaches it, the 5th does not.
    assert thresholds_reached(quota=7, used=5) == []
    assert thresholds_reached(quota=7, used=6) == [80]


def test_a_quota_of_one_reaches_both_at_once():
    assert thresholds_reached(quota=1, used=1) == [80, 100]


def test_an_alert_is_emailed_to_the_customer(customer, mailoutbox):
    send(customer)
    assert [message.to for message in mailoutbox] == [["alice@example.com"]]


def test_the_80_percent_alert_says_so(customer, mailoutbox):
    send(customer, 80)
    assert subjects(mailoutbox) == ["[Tiered API] You have used 80% of your API quota"]


def test_the_100_percent_alert_says_the_quota_is_used_up(customer, mailoutbox):
    send(customer, 100)
    assert subjects(mailoutbox) == ["[Tiered API] You have used all of your API quota"]


@override_settings(PRODUCT_NAME="Acme Geo")
def test_the_subject_starts_with_the_product_name(customer, mailoutbox):
    send(customer, 80)
    assert subjects(mailoutbox) == ["[Acme Geo] You have used 80% of your API quota"]


@override_settings(SITE_URL="https://api.example.com")
def test_the_email_links_to_the_dashboard_by_its_absolute_address(customer, mailoutbox):
    send(customer, 100)
    assert "https://api.example.com/dashboard/" in mailoutbox[0].body


def test_the_100_percent_email_of_a_hard_quota_offers_the_next_tier(customer, mailoutbox):
    send(customer, 100)
    assert "Upgrade to Pro for 50000 requests per month" in mailoutbox[0].body


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
    assert subjects(mailoutbox) == ["[Tiered API] You have used 80% of your API quota"]


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
    assert subjects(mailoutbox) == ["[Tiered API] You have used 80% of your API quota"]


def test_reaching_80_then_100_percent_sends_one_email_each(key_client, customer, mailoutbox):
    limit_to(customer, 5)
    for _ in range(7):
        key_client.get(ECHO)
    assert subjects(mailoutbox) == [
        "[Tiered API] You have used 80% of your API quota",
        "[Tiered API] You have used all of your API quota",
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


def test_reaching_80_percent_again_after_refunds_sends_no_second_email(
    key_client, customer, api_key, mailoutbox
):
    limit_to(customer, 5)
    for _ in range(4):
        key_client.get(ECHO)
    assert QuotaAlert.objects.filter(threshold=80).count() == 1
    in_flight = reserve(customer, api_key, quota=5)  # another request in flight: 5 of 5 reserved
    fail(in_flight)  # it fails and gives its unit back: 4 of 5
    send(customer, 80, month_start())  # a late duplicate of the 80% task
    assert subjects(mailoutbox) == ["[Tiered API] You have used 80% of your API quota"]


def test_the_100_percent_alert_of_a_tier_with_overage_is_sent_once(key_client, customer, mailoutbox):
    Tier.objects.filter(slug="free").update(overage_price_per_1000=Decimal("0.50"))
    limit_to(customer, 2)
    for _ in range(5):
        assert key_client.get(ECHO).status_code == 200
    assert subjects(mailoutbox) == [
        "[Tiered API] You have used 80% of your API quota",
        "[Tiered API] You have used all of your API quota",
    ]


@month_ends()
def test_the_80_percent_alert_is_sent_again_in_the_next_month(
    key_client, customer, mailoutbox, time_machine, edge
):
    limit_to(customer, 5)
    time_machine.move_to(edge.moment, tick=False)
    for _ in range(4):
        key_client.get(ECHO)
    time_machine.move_to(edge.month_end, tick=False)
    for _ in range(4):
        key_client.get(ECHO)
    alerts = QuotaAlert.objects.order_by("period_start").values_list("period_start", "threshold")
    assert list(alerts) == [(edge.month_start, 80), (edge.month_end, 80)]
    assert subjects(mailoutbox) == ["[Tiered API] You have used 80% of your API quota"] * 2


def reserve(customer, api_key, *, quota: int):
    """What another worker's throttle does for a request now in flight: reserve
    one unit and bill it optimistically."""
    start = month_start()
    limits = Limits(
        customer_id=customer.pk,
        burst=1000,
        quota=quota,
        period_start=start,
        period_end=(start + timedelta(days=32)).replace(day=1),
    )
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    field = usage_field(hour_of(now_ms), api_key.api_key.pk, "api:echo")
    decision = get_limiter().check(limits, now_ms=now_ms, bill_field=field)
    assert decision.admitted
    return decision, field


def fail(in_flight) -> None:
    """The in-flight request fails: the middleware unbills it and gives its unit back."""
    decision, field = in_flight
    settlement = settle(decision, billed_at_check=True, billable=False, field=field, cost=1)
    assert not settlement.billed


def test_a_request_that_reaches_80_percent_while_another_is_in_flight_alerts(
    key_client, customer, api_key, mailoutbox
):
    limit_to(customer, 10)
    for _ in range(6):
        key_client.get(ECHO)
    reserve(customer, api_key, quota=10)  # 7 reserved and billed, still running
    key_client.get(ECHO)  # the 8th unit: 80% reached
    assert subjects(mailoutbox) == ["[Tiered API] You have used 80% of your API quota"]


def test_80_percent_is_alerted_when_a_request_in_flight_is_refunded(
    key_client, customer, api_key, mailoutbox
):
    limit_to(customer, 10)
    for _ in range(7):
        key_client.get(ECHO)
    in_flight = reserve(customer, api_key, quota=10)  # 8 reserved
    key_client.get(ECHO)  # reserves the 9th, billed: 8 billed, counter 9
    fail(in_flight)  # the in-flight one fails: 8 of 10 billed
    assert subjects(mailoutbox) == ["[Tiered API] You have used 80% of your API quota"]


def test_the_threshold_is_queued_once_per_process_by_later_requests(
    key_client, customer, mailoutbox, monkeypatch
):
    queued = []
    monkeypatch.setattr(send_quota_alert, "delay", lambda *args: queued.append(args))
    limit_to(customer, 10)
    for _ in range(9):
        assert key_client.get(ECHO).status_code == 200
    assert [threshold for _, _, threshold in queued] == [80]


def test_a_threshold_reached_in_another_process_too_is_emailed_once(
    key_client, customer, mailoutbox, monkeypatch
):
    limit_to(customer, 10)
    for _ in range(8):
        key_client.get(ECHO)
    monkeypatch.setattr(middleware, "_alerts_queued", set())  # another process: nothing queued yet
    key_client.get(ECHO)
    assert subjects(mailoutbox) == ["[Tiered API] You have used 80% of your API quota"]
