import re

from plans.models import Tier

from .pages import text


def test_the_landing_page_invites_to_sign_up(client, default_tiers):
    html = client.get("/").content.decode()
    assert 'href="/accounts/signup/"' in html
    assert 'href="/pricing/"' in html


def test_the_landing_page_sends_a_signed_in_user_to_the_dashboard(alice_client):
    assert 'href="/dashboard/"' in alice_client.get("/").content.decode()


def test_the_pricing_page_shows_every_public_tier_with_its_terms(client, default_tiers):
    Tier.objects.filter(slug="pro").update(overage_price_per_1000="0.5")
    response = client.get("/pricing/")
    assert response.status_code == 200
    page = text(response)
    pro = default_tiers["pro"]
    assert "<h3>Pro</h3>" in response.content.decode()
    assert "Pro $29.00 /month 50,000 requests per month" in page
    assert f"Bursts up to {pro.burst} requests per second" in page
    assert "Then $0.50 per 1,000 requests" in page


def test_a_tier_without_overage_is_shown_as_a_hard_limit(client, default_tiers):
    assert "Hard limit" in client.get("/pricing/").content.decode()


def test_an_admin_change_to_a_tier_shows_on_the_pricing_page_at_once(client, default_tiers):
    client.get("/pricing/")
    Tier.objects.filter(slug="pro").update(price="39.00", quota=75000, overage_price_per_1000="0.0025")
    page = text(client.get("/pricing/"))
    assert "$39.00" in page
    assert "75,000 requests per month" in page
    assert "$0.0025 per 1,000 requests" in page


def test_a_private_tier_is_not_on_the_pricing_page(client, default_tiers):
    Tier.objects.filter(slug="enterprise").update(is_public=False)
    assert "<h3>Enterprise</h3>" not in client.get("/pricing/").content.decode()


def test_the_pricing_page_without_tiers_says_how_to_load_them(client, db):
    assert "sync_tiers" in client.get("/pricing/").content.decode()


def test_pages_load_no_asset_from_another_host(client, default_tiers):
    for path in ["/", "/pricing/", "/accounts/login/", "/accounts/signup/"]:
        html = client.get(path).content.decode()
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, path
        assert not [source for source in sources if source.startswith(("http:", "https:", "//"))], path


def test_the_pricing_page_answers_head_but_not_post(client, default_tiers):
    assert client.head("/pricing/").status_code == 200
    assert client.post("/pricing/").status_code == 405
