"""The margin guard in the admin: a warning on a tier priced under 3x its cost, never a block."""

import pytest
from django.contrib import messages
from django.utils import timezone

from metering.models import EndpointCost
from plans.models import Tier


def measure(endpoint, *, requests, cpu_us=0, calls=0):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    metrics = {"requests": requests, "cpu_us": cpu_us, "bytes_out": 0, "third_party_calls": calls}
    EndpointCost.objects.bulk_create(
        EndpointCost(endpoint=endpoint, hour=hour, metric=metric, value=value)
        for metric, value in metrics.items()
    )


@pytest.fixture
def costly_calls(db):
    """One third-party call a request ($0.005): Pro's 50,000 requests cost $250, over 8x its price."""
    measure("api:geocode", requests=10, calls=10)


@pytest.fixture
def cheap_echo(db):
    """1 ms of CPU a request ($0.000002): Pro's 50,000 requests cost $0.10."""
    measure("api:echo", requests=10, cpu_us=10_000)


def change_url(tier) -> str:
    return f"/admin/plans/tier/{tier.pk}/change/"


def tier_form(tier, **changes) -> dict:
    """The admin's change form for a tier, as the browser posts it."""
    form = {
        "slug": tier.slug,
        "name": tier.name,
        "is_public": "on",
        "is_active": "on",
        "display_order": str(tier.display_order),
        "price": str(tier.price),
        "currency": tier.currency,
        "overage_price_per_1000": "",
        "stripe_price_id": tier.stripe_price_id,
        "quota": str(tier.quota),
        "quota_period": tier.quota_period,
        "burst": str(tier.burst),
    }
    return {**form, **{name: str(value) for name, value in changes.items()}}


def warnings(response) -> list[str]:
    return [str(m) for m in response.context["messages"] if m.level == messages.WARNING]


def test_the_change_page_of_an_underpriced_tier_warns(admin_client, default_tiers, costly_calls):
    response = admin_client.get(change_url(default_tiers["pro"]))
    assert response.status_code == 200
    [warning] = warnings(response)
    assert "Pro earns 0.11x" in warning
    assert "$250.00 a month" in warning
    assert "the floor is 3x" in warning
    assert "the floor is 3x" in response.content.decode()


def test_the_change_page_of_a_well_priced_tier_does_not_warn(admin_client, default_tiers, cheap_echo):
    response = admin_client.get(change_url(default_tiers["pro"]))
    assert response.status_code == 200
    assert warnings(response) == []


def test_the_change_page_does_not_warn_before_anything_is_measured(admin_client, default_tiers):
    assert warnings(admin_client.get(change_url(default_tiers["pro"]))) == []


def test_saving_an_underpriced_tier_warns_and_still_saves(admin_client, default_tiers, costly_calls):
    pro = default_tiers["pro"]
    response = admin_client.post(change_url(pro), tier_form(pro, price="30.00"), follow=True)
    assert response.redirect_chain[0][1] == 302
    [warning] = warnings(response)
    assert "Pro earns 0.12x" in warning
    assert Tier.objects.get(pk=pro.pk).price == 30


def test_raising_the_quota_past_the_floor_warns_on_save(admin_client, default_tiers, cheap_echo):
    # 5,000,000 requests x $0.000002 = $10: Pro's $29 is then 2.9x its cost.
    pro = default_tiers["pro"]
    response = admin_client.post(change_url(pro), tier_form(pro, quota=5_000_000), follow=True)
    [warning] = warnings(response)
    assert "Pro earns 2.90x" in warning
    assert Tier.objects.get(pk=pro.pk).quota == 5_000_000


def test_saving_a_well_priced_tier_does_not_warn(admin_client, default_tiers, cheap_echo):
    pro = default_tiers["pro"]
    response = admin_client.post(change_url(pro), tier_form(pro, price="35.00"), follow=True)
    assert response.redirect_chain[0][1] == 302
    assert warnings(response) == []
    assert Tier.objects.get(pk=pro.pk).price == 35


def test_raising_the_price_above_the_floor_clears_the_warning(admin_client, default_tiers, costly_calls):
    # $250 at full quota: $750 is exactly 3x.
    pro = default_tiers["pro"]
    response = admin_client.post(change_url(pro), tier_form(pro, price="750.00"), follow=True)
    assert warnings(response) == []
