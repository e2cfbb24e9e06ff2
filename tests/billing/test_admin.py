"""Billing admin: it refuses tiers and customers whose overage could not be
billed right, and replays only for staff allowed to replay."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from billing.models import EventStatus, StripeEvent, StripeSync, SyncStatus
from plans.models import Customer, Tier
from tests.utils import staff_user

pytestmark = pytest.mark.django_db

TIER_FORM = {
    "slug": "daily",
    "name": "Daily",
    "price": "9.00",
    "currency": "usd",
    "overage_price_per_1000": "2.00",
    "stripe_product_id": "",
    "stripe_price_id": "",
    "stripe_overage_price_id": "",
    "quota": "100",
    "quota_period": "day",
    "burst": "2",
    "is_public": "on",
    "is_active": "on",
    "display_order": "4",
}


def test_admin_refuses_overage_on_a_daily_quota(admin_client, default_tiers):
    response = admin_client.post("/admin/plans/tier/add/", TIER_FORM)
    assert response.status_code == 200
    assert "the billing month" in response.content.decode()
    assert not Tier.objects.filter(slug="daily").exists()


def test_admin_refuses_a_three_decimal_currency(admin_client, default_tiers):
    form = {**TIER_FORM, "quota_period": "month", "currency": "bhd"}
    response = admin_client.post("/admin/plans/tier/add/", form)
    assert "three-decimal" in response.content.decode()
    assert not Tier.objects.filter(slug="daily").exists()


def customer_form(customer: Customer, **overrides) -> dict:
    return {
        "user": customer.user_id,
        "tier": customer.tier_id,
        "quota_override": "",
        "burst_override": "",
        "overage_spending_cap": "",
        "stripe_customer_id": "",
        "stripe_subscription_id": "",
        "subscription_status": "none",
        "current_period_start_0": "",
        "current_period_start_1": "",
        "current_period_end_0": "",
        "current_period_end_1": "",
        "past_due_since_0": "",
        "past_due_since_1": "",
        "past_due_warned_at_0": "",
        "past_due_warned_at_1": "",
        "subscription_event_at_0": "",
        "subscription_event_at_1": "",
        **overrides,
    }


def test_admin_refuses_a_spending_cap_on_a_daily_quota(admin_client, customer):
    daily = Tier.objects.create(
        slug="daily", name="Daily", price=Decimal("9"), quota=100, quota_period="day", burst=2
    )
    form = customer_form(customer, tier=daily.pk, overage_spending_cap="5.00")
    response = admin_client.post(f"/admin/plans/customer/{customer.pk}/change/", form)
    assert response.status_code == 200
    assert "the billing month" in response.content.decode()
    customer.refresh_from_db()
    assert customer.overage_spending_cap is None


def test_admin_accepts_a_spending_cap_on_a_monthly_quota(admin_client, customer):
    form = customer_form(customer, overage_spending_cap="5.00")
    response = admin_client.post(f"/admin/plans/customer/{customer.pk}/change/", form)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.overage_spending_cap == Decimal("5.00")


# Replays need their own permission --------------------------------------------------------


def failed_event() -> StripeEvent:
    return StripeEvent.objects.create(
        stripe_id="evt_failed",
        type="invoice.paid",
        stripe_created=timezone.now(),
        payload={"id": "evt_failed"},
        status=EventStatus.FAILED,
        error="APIConnectionError: Stripe did not answer",
    )


def failed_sync() -> StripeSync:
    return StripeSync.objects.create(
        operation="catalog",
        target="tier:pro",
        idempotency_key="catalog-tier-pro-1",
        status=SyncStatus.FAILED,
        error="APIConnectionError: Stripe did not answer",
    )


def replay(client, model: str, pk: int, capture):
    with capture() as queued:
        response = client.post(f"/admin/billing/{model}/", {"action": "replay", "_selected_action": [pk]})
    return response, queued


def offered_actions(client, model: str) -> list[str]:
    response = client.get(f"/admin/billing/{model}/")
    assert response.status_code == 200
    action_form = response.context["action_form"]
    return [] if action_form is None else [name for name, _ in action_form.fields["action"].choices if name]


@pytest.mark.parametrize("model", ["stripeevent", "stripesync"])
def test_a_view_only_staff_user_is_not_offered_a_replay(view_only_client, model):
    assert "replay" not in offered_actions(view_only_client, model)


def test_a_view_only_staff_user_cannot_replay_an_event(view_only_client, django_capture_on_commit_callbacks):
    event = failed_event()
    _, queued = replay(view_only_client, "stripeevent", event.pk, django_capture_on_commit_callbacks)
    assert queued == []
    event.refresh_from_db()
    assert (event.status, event.error) == (EventStatus.FAILED, "APIConnectionError: Stripe did not answer")


def test_a_view_only_staff_user_cannot_replay_a_sync(view_only_client, django_capture_on_commit_callbacks):
    sync = failed_sync()
    _, queued = replay(view_only_client, "stripesync", sync.pk, django_capture_on_commit_callbacks)
    assert queued == []
    sync.refresh_from_db()
    assert sync.status == SyncStatus.FAILED


@pytest.mark.parametrize(
    "model, make_row, replayed_status",
    [("stripeevent", failed_event, EventStatus.RECEIVED), ("stripesync", failed_sync, SyncStatus.PENDING)],
)
def test_staff_with_the_replay_permission_can_replay(
    django_user_model, django_capture_on_commit_callbacks, model, make_row, replayed_status
):
    permissions = Permission.objects.filter(
        content_type__app_label="billing", codename__in=[f"view_{model}", f"replay_{model}"]
    )
    assert len(permissions) == 2
    client = Client()
    client.force_login(staff_user(django_user_model, "rita", *permissions))
    row = make_row()
    assert "replay" in offered_actions(client, model)
    # Queued after commit: the task itself is not run here (it would call Stripe).
    _, queued = replay(client, model, row.pk, django_capture_on_commit_callbacks)
    assert len(queued) == 1
    row.refresh_from_db()
    assert row.status == replayed_status
