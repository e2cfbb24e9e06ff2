"""The dashboard warns at 80 % and 100 % of the period's quota, with the
reset date and, when a higher tier exists, an upgrade button (issue 16, item 5)."""

import re
from datetime import UTC, datetime
from decimal import Decimal

from django.utils import timezone

from metering.models import UsageRecord
from plans.models import Customer, Tier
from plans.periods import period_bounds

from .pages import text


def use(customer, api_key, units: int) -> None:
    """Billed usage this period, as the flush leaves it in the ledger."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    UsageRecord.objects.create(
        customer=customer, api_key=api_key.api_key, endpoint="echo", hour=hour, count=units
    )


def banner(response) -> str | None:
    found = re.search(r'<div[^>]*id="quota-banner".*?</div>', response.content.decode(), re.S)
    return found.group(0) if found else None


def reset_text() -> str:
    end = period_bounds("month", timezone.now())[1]
    return f"{end.day} {end:%B %Y}, {end:%H:%M} UTC"


def test_below_80_percent_there_is_no_banner(alice, alice_client, api_key):
    use(alice, api_key, 799)
    assert banner(alice_client.get("/dashboard/")) is None


def test_at_80_percent_a_warning_gives_the_reset_date_and_the_upgrade(alice, alice_client, api_key):
    use(alice, api_key, 800)
    shown = banner(alice_client.get("/dashboard/"))
    assert 'class="alert warning' in shown
    assert "You have used 80% of this period’s quota" in text_of(shown)
    assert reset_text() in text_of(shown)
    assert re.search(r'<a class="button[^"]*" href="#billing">Upgrade to Pro</a>', shown)


def test_at_100_percent_the_banner_says_calls_are_refused_until_the_reset(alice, alice_client, api_key):
    use(alice, api_key, 1000)
    shown = text_of(banner(alice_client.get("/dashboard/")))
    assert "Your quota for this period is used up" in shown
    assert "429" in shown and reset_text() in shown
    assert "Upgrade to Pro" in shown


def test_on_the_highest_tier_the_banner_offers_no_upgrade(alice, alice_client, api_key, default_tiers):
    Customer.objects.filter(pk=alice.pk).update(tier=default_tiers["enterprise"], quota_override=100)
    use(alice, api_key, 100)
    shown = banner(alice_client.get("/dashboard/"))
    assert "used up" in text_of(shown)
    assert "Upgrade" not in shown


def test_on_an_overage_tier_at_100_percent_the_banner_says_calls_are_billed_as_overage(
    alice, alice_client, api_key
):
    Tier.objects.filter(slug="free").update(overage_price_per_1000=Decimal("0.50"))
    use(alice, api_key, 1000)
    shown = text_of(banner(alice_client.get("/dashboard/")))
    assert "billed as overage" in shown
    assert "429" not in shown


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_banner_shows_once(alice, alice_client, api_key):
    use(alice, api_key, 1000)
    assert text(alice_client.get("/dashboard/")).count("used up") == 1


def test_a_customer_whose_own_quota_beats_the_next_tier_is_offered_the_one_after(
    alice, alice_client, api_key
):
    Customer.objects.filter(pk=alice.pk).update(quota_override=100_000)
    use(alice, api_key, 100_000)
    assert "Upgrade to Enterprise" in banner(alice_client.get("/dashboard/"))
