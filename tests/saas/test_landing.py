from plans.models import Tier


def test_it_lists_the_public_tiers_with_their_prices(client, default_tiers):
    response = client.get("/")
    assert response.status_code == 200
    for name, price in [("Pro", "$29.00"), ("Enterprise", "$199.00")]:
        assert f"<h3>{name}</h3>" in response.content.decode()
        assert price in response.content.decode()
    assert "<h3>Free</h3>" in response.content.decode()


def test_a_tier_made_private_disappears_at_once(client, default_tiers):
    client.get("/")
    Tier.objects.filter(slug="pro").update(is_public=False)
    html = client.get("/").content.decode()
    assert "<h3>Pro</h3>" not in html
    assert "<h3>Enterprise</h3>" in html


def test_an_inactive_tier_is_not_listed(client, default_tiers):
    Tier.objects.filter(slug="enterprise").update(is_active=False)
    assert "<h3>Enterprise</h3>" not in client.get("/").content.decode()


def test_a_renamed_tier_shows_its_new_name(client, default_tiers):
    client.get("/")
    Tier.objects.filter(slug="pro").update(name="Professional")
    html = client.get("/").content.decode()
    assert "<h3>Professional</h3>" in html
    assert "<h3>Pro</h3>" not in html
