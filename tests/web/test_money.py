"""Prices on the pages, in the currency's own format and the visitor's locale."""

from decimal import Decimal

from plans.models import Tier

from .pages import text


def pricing(client, language: str | None = None) -> str:
    headers = {"Accept-Language": language} if language else {}
    return text(client.get("/pricing/", headers=headers))


def test_the_pricing_page_writes_prices_as_american_english_does(client, default_tiers):
    Tier.objects.filter(slug="pro").update(overage_price_per_1000=Decimal("0.5"))
    page = pricing(client, "en-US,en;q=0.9")
    assert "Pro $29.00 /month" in page
    assert "Then $0.50 per 1,000 requests" in page
    assert "USD" not in page


def test_the_pricing_page_writes_prices_as_french_does(client, default_tiers):
    Tier.objects.filter(slug="pro").update(overage_price_per_1000=Decimal("0.5"))
    page = pricing(client, "fr-FR,fr;q=0.9,en;q=0.5")
    assert "Pro 29,00 $US /month" in page
    assert "Then 0,50 $US per 1,000 requests" in page


def test_without_accept_language_prices_follow_the_default_language(client, default_tiers, settings):
    settings.LANGUAGE_CODE = "en-us"
    assert "Pro $29.00 /month" in pricing(client)


def test_the_free_tier_reads_free_once(client, default_tiers):
    page = pricing(client, "en-US")
    assert "Free / Free" not in page
    assert "Free Free" not in page  # the card: its name, then its price
    assert "Free $0.00 /month" in page


def test_the_landing_page_writes_prices_in_the_visitor_locale(client, default_tiers):
    page = text(client.get("/", headers={"Accept-Language": "fr-FR"}))
    assert "199,00 $US" in page


def test_the_dashboard_writes_the_plan_price_in_the_visitor_locale(alice_client, customer):
    Tier.objects.filter(slug="free").update(price=Decimal("9.00"))
    page = text(alice_client.get("/dashboard/", headers={"Accept-Language": "fr-FR"}))
    assert "You are on Free at 9,00 $US a month" in page


def test_the_operator_dashboard_writes_mrr_and_prices_as_money(admin_client, default_tiers):
    page = text(admin_client.get("/admin/dashboard/", headers={"Accept-Language": "en-US"}))
    assert "Pro $29.00/mo" in page
    assert "MRR (USD) $0.00" in page


def test_the_tier_list_in_admin_shows_prices_as_money(admin_client, default_tiers, settings):
    settings.LANGUAGE_CODE = "en-us"
    Tier.objects.filter(slug="pro").update(overage_price_per_1000=Decimal("0.5"))
    page = text(admin_client.get("/admin/plans/tier/"))
    assert "Pro $29.00" in page
    assert "$0.50" in page
    assert "hard limit" in page
