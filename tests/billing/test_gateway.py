"""The amounts the gateway sends to Stripe: exact, in each currency's minor unit."""

from decimal import Decimal

import pytest

from billing.sync import catalog_sync_queue
from billing.tasks import run_stripe_sync
from plans.models import Tier

pytestmark = pytest.mark.django_db


def make_tier(**overrides) -> Tier:
    fields = dict(slug="big", name="Big", price=Decimal("49.00"), quota=10, quota_period="month", burst=5)
    return Tier.objects.create(**{**fields, **overrides})


def created_prices(stripe_double, tier: Tier) -> list[dict]:
    run_stripe_sync.apply(args=[catalog_sync_queue(tier).pk])
    created = [r.params for r in stripe_double.requests_to("POST", "/v1/prices")]
    return [params for params in created if params["product"] == "tier_big"]


def test_an_overage_price_is_sent_as_a_plain_decimal_never_in_exponent_form(stripe_double, default_tiers):
    tier = make_tier(overage_price_per_1000=Decimal("100.0000"))  # 10 cents a request
    overage = created_prices(stripe_double, tier)[1]
    assert overage["unit_amount_decimal"] == "10"
    assert overage["lookup_key"] == "big-overage-10-usd"


def test_a_fraction_of_a_cent_per_request_is_sent_exactly(stripe_double, default_tiers):
    tier = make_tier(overage_price_per_1000=Decimal("0.0100"))  # 0.001 cents a request
    assert created_prices(stripe_double, tier)[1]["unit_amount_decimal"] == "0.001"


def test_a_zero_decimal_currency_is_sent_in_whole_units(stripe_double, default_tiers):
    tier = make_tier(price=Decimal("1000.00"), currency="jpy", overage_price_per_1000=Decimal("50"))
    flat, overage = created_prices(stripe_double, tier)
    assert (flat["unit_amount"], flat["lookup_key"]) == ("1000", "big-flat-1000-jpy")
    assert overage["unit_amount_decimal"] == "0.05"  # yen a request


def test_a_two_decimal_currency_is_sent_in_cents(stripe_double, default_tiers):
    tier = make_tier(price=Decimal("1000.00"), currency="eur")
    assert created_prices(stripe_double, tier)[0]["unit_amount"] == "100000"
