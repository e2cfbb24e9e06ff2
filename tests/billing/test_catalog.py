"""The Stripe catalog: each paid tier's Product, monthly Price and metered overage Price."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import StripeSync, SyncStatus
from billing.sync import catalog_sync_queue
from billing.tasks import run_stripe_sync
from plans.models import Tier

from .stripe_double import SERVER_ERROR

pytestmark = pytest.mark.django_db


def sync_tiers() -> str:
    out = StringIO()
    call_command("sync_tiers", stdout=out)
    return out.getvalue()


def test_sync_tiers_creates_a_product_and_monthly_price_for_each_paid_tier(stripe_double, default_tiers):
    output = sync_tiers()
    pro = Tier.objects.get(slug="pro")
    assert f"stripe: pro -> tier_pro, price {pro.stripe_price_id}" in output
    assert set(stripe_double.products) == {"tier_pro", "tier_enterprise"}  # not the free tier
    price = stripe_double.prices[pro.stripe_price_id]
    created = [
        r.params for r in stripe_double.requests_to("POST", "/v1/prices") if r.params["product"] == "tier_pro"
    ]
    assert created == [
        {
            "product": "tier_pro",
            "currency": "usd",
            "unit_amount": "2900",
            "recurring": {"interval": "month"},
            "metadata": {"tier": "pro"},
            "lookup_key": "pro-flat-2900-usd",
        }
    ]
    assert (price["lookup_key"], pro.stripe_product_id, Tier.objects.get(slug="free").stripe_price_id) == (
        "pro-flat-2900-usd",
        "tier_pro",
        "",
    )


def test_sync_tiers_twice_creates_nothing_new_in_stripe(stripe_double, default_tiers):
    sync_tiers()
    ids = {tier.slug: tier.stripe_price_id for tier in Tier.objects.all()}
    creates = [r for r in stripe_double.requests if r.method == "POST"]
    sync_tiers()
    assert [r for r in stripe_double.requests if r.method == "POST"] == creates
    assert {tier.slug: tier.stripe_price_id for tier in Tier.objects.all()} == ids


def test_creates_carry_idempotency_keys_derived_from_what_they_create(stripe_double, default_tiers):
    sync_tiers()
    keys = {r.path: r.headers.get("idempotency-key") for r in stripe_double.requests if r.method == "POST"}
    assert keys["/v1/products"] in {"product-tier_pro", "product-tier_enterprise"}
    assert keys["/v1/prices"] in {"price-pro-flat-2900-usd", "price-enterprise-flat-19900-usd"}


def sync_catalog(tier: Tier) -> Tier:
    run_stripe_sync.apply(args=[catalog_sync_queue(tier).pk])
    tier.refresh_from_db()
    return tier


def test_a_new_price_gets_a_new_stripe_price_and_the_old_one_stays(stripe_double, default_tiers):
    sync_tiers()
    pro = Tier.objects.get(slug="pro")
    old_price = pro.stripe_price_id
    pro.price = Decimal("39.00")
    pro.save()
    pro = sync_catalog(pro)
    assert pro.stripe_price_id != old_price
    assert stripe_double.prices[pro.stripe_price_id]["unit_amount"] == 3900
    assert old_price in stripe_double.prices


def test_an_overage_tier_gets_a_meter_and_a_metered_price(stripe_double, overage_tier):
    overage_tier = sync_catalog(overage_tier)
    (meter,) = stripe_double.meters.values()
    assert meter["event_name"] == "api_overage_requests"
    assert meter["customer_mapping"] == {"event_payload_key": "stripe_customer_id", "type": "by_id"}
    price = stripe_double.prices[overage_tier.stripe_overage_price_id]
    assert price["recurring"]["usage_type"] == "metered"
    assert price["recurring"]["meter"] == meter["id"]
    assert price["unit_amount_decimal"] == "0.2"  # $2.00 per 1,000 requests = 0.2 cents each
    sync_catalog(overage_tier)
    assert len(stripe_double.meters) == 1
    assert sum(price["product"] == "tier_scale" for price in stripe_double.prices.values()) == 2


def test_stripe_failing_leaves_the_tiers_saved_and_the_sync_marked_failed(stripe_double, default_tiers):
    stripe_double.fail("GET", "/v1/products/", SERVER_ERROR, times=10)
    with pytest.raises(CommandError, match="Stripe catalog sync failed"):
        sync_tiers()
    assert Tier.objects.filter(slug="pro").exists()
    failed = StripeSync.objects.filter(operation="catalog", status=SyncStatus.FAILED)
    assert failed.count() == 2
    assert "Something went wrong on Stripe's end" in failed.first().error


def test_without_stripe_keys_sync_tiers_only_touches_the_database(default_tiers, settings):
    settings.STRIPE_SECRET_KEY = ""
    assert "stripe:" not in sync_tiers()
    assert not StripeSync.objects.exists()


def test_saving_a_tier_in_admin_queues_its_catalog_sync(
    stripe_double, default_tiers, admin_client, django_capture_on_commit_callbacks
):
    pro = Tier.objects.get(slug="pro")
    form = {
        "slug": "pro",
        "name": "Pro Plus",
        "price": "29.00",
        "currency": "usd",
        "overage_price_per_1000": "",
        "stripe_product_id": "",
        "stripe_price_id": "",
        "stripe_overage_price_id": "",
        "quota": "50000",
        "quota_period": "month",
        "burst": "20",
        "is_public": "on",
        "is_active": "on",
        "display_order": "2",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/plans/tier/{pro.pk}/change/", form)
    assert response.status_code == 302
    pro.refresh_from_db()
    assert pro.stripe_price_id in stripe_double.prices
    assert stripe_double.products["tier_pro"]["name"] == "Pro Plus"
    assert StripeSync.objects.filter(target="tier:pro").latest("created_at").status == SyncStatus.SUCCEEDED


@pytest.mark.parametrize("model", ["stripeevent", "stripesync", "overagereport"])
def test_the_stripe_records_are_listed_in_admin_and_never_added_by_hand(admin_client, db, model):
    assert admin_client.get(f"/admin/billing/{model}/").status_code == 200
    assert admin_client.get(f"/admin/billing/{model}/add/").status_code == 403


def test_a_failed_sync_shows_its_error_and_can_be_replayed_from_admin(
    stripe_double, default_tiers, admin_client, django_capture_on_commit_callbacks
):
    stripe_double.fail("GET", "/v1/products/", SERVER_ERROR, times=10)
    with pytest.raises(CommandError):
        sync_tiers()
    failed = StripeSync.objects.filter(status=SyncStatus.FAILED).first()
    page = admin_client.get(f"/admin/billing/stripesync/{failed.pk}/change/").content.decode()
    assert "Something went wrong on Stripe&#x27;s end" in page
    stripe_double._faults.clear()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/billing/stripesync/", {"action": "replay", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (SyncStatus.SUCCEEDED, 2)


def sync_tiers_forced() -> str:
    out = StringIO()
    call_command("sync_tiers", "--force", stdout=out)
    return out.getvalue()


def test_a_tier_edited_in_admin_keeps_its_stripe_price_until_a_forced_sync(stripe_double, default_tiers):
    sync_tiers()
    pro = Tier.objects.get(slug="pro")
    pro.price = Decimal("39.00")
    pro.save()
    sync_catalog(pro)  # what saving in admin queues
    kept = Tier.objects.get(slug="pro")
    sync_tiers()
    assert Tier.objects.get(slug="pro").stripe_price_id == kept.stripe_price_id
    assert stripe_double.prices[kept.stripe_price_id]["unit_amount"] == 3900
    output = sync_tiers_forced()
    forced = Tier.objects.get(slug="pro")
    assert stripe_double.prices[forced.stripe_price_id]["unit_amount"] == 2900
    assert f"stripe: pro -> tier_pro, price {forced.stripe_price_id}" in output
