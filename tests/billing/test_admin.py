"""Admin refuses tiers and customers whose overage could not be billed right."""

from decimal import Decimal

import pytest

from plans.models import Customer, Tier

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
