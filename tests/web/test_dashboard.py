import json
import re
from datetime import UTC, datetime, timedelta

from django.test import Client
from django.utils import timezone

from metering.models import RefusalRecord, UsageRecord
from plans.models import Customer, SubscriptionStatus, Tier

from .pages import text


def chart(response, name) -> dict:
    found = re.search(
        rf'<script id="usage-{name}" type="application/json">(.*?)</script>', response.content.decode()
    )
    return json.loads(found.group(1))


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def test_an_anonymous_visitor_is_sent_to_log_in_and_back(client, db):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/dashboard/"


def test_the_dashboard_shows_the_tier_and_billing_status(alice_client):
    page = text(alice_client.get("/dashboard/"))
    assert "Free" in page
    assert "No subscription" in page


def test_the_dashboard_is_never_cached(alice_client):
    assert "no-store" in alice_client.get("/dashboard/")["Cache-Control"]


def test_a_user_without_a_customer_gets_one_on_the_free_tier(default_tiers, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    assert client.get("/dashboard/").status_code == 200
    assert Customer.objects.get(user=admin).tier.slug == "free"


def test_usage_this_period_shows_against_the_quota(alice_client, key_client):
    for _ in range(3):
        assert key_client.get("/api/v1/echo?msg=hi").status_code == 200
    response = alice_client.get("/dashboard/")
    assert "3 of 1,000 requests" in text(response)
    assert 'aria-valuenow="0"' in response.content.decode()  # 3 of 1,000 rounds down


def test_the_charts_count_todays_and_this_hours_requests(alice_client, key_client):
    key_client.get("/api/v1/echo?msg=hi")
    key_client.get("/api/v1/echo?msg=hi")
    response = alice_client.get("/dashboard/")
    daily, hourly = chart(response, "daily"), chart(response, "hourly")
    assert daily["used"][-1] == 2
    assert len(hourly["labels"]) == 24
    assert hourly["labels"][-1] == f"{this_hour():%H}:00"
    assert hourly["used"][-1] == 2


def test_usage_flushed_to_the_database_counts_too(alice, alice_client, api_key, time_machine):
    # Mid-month: two hours ago is in this quota period (not so in a month's first two hours).
    time_machine.move_to(datetime(2027, 5, 12, 15, 20, tzinfo=UTC), tick=False)
    alice_client.force_login(alice.user)  # a session that has not expired by then
    UsageRecord.objects.create(
        customer=alice,
        api_key=api_key.api_key,
        endpoint="echo",
        hour=this_hour() - timedelta(hours=2),
        count=40,
    )
    response = alice_client.get("/dashboard/")
    assert "40 of 1,000 requests" in text(response)
    assert chart(response, "hourly")["used"][-3] == 40


def test_a_full_quota_shows_a_full_bar(alice, alice_client, api_key):
    UsageRecord.objects.create(
        customer=alice, api_key=api_key.api_key, endpoint="echo", hour=this_hour(), count=1200
    )
    html = alice_client.get("/dashboard/").content.decode()
    assert 'class="meter full"' in html
    assert 'aria-valuenow="100"' in html


def test_429s_are_counted_for_the_day_and_the_period(alice, alice_client):
    RefusalRecord.objects.create(customer=alice, hour=this_hour(), status=429, count=4)
    RefusalRecord.objects.create(customer=alice, hour=this_hour(), status=402, count=9)
    response = alice_client.get("/dashboard/")
    page = text(response)
    assert "Refused (429) last 24 h 4" in page
    assert chart(response, "hourly")["refused"][-1] == 4
    assert chart(response, "daily")["refused"][-1] == 4


def test_another_customers_usage_and_refusals_never_show(alice_client, other_customer, bob_key):
    UsageRecord.objects.create(
        customer=other_customer, api_key=bob_key.api_key, endpoint="echo", hour=this_hour(), count=77
    )
    RefusalRecord.objects.create(customer=other_customer, hour=this_hour(), status=429, count=5)
    response = alice_client.get("/dashboard/")
    assert "0 of 1,000 requests" in text(response)
    assert chart(response, "hourly")["refused"][-1] == 0


def test_past_due_warns_with_the_day_access_stops(alice, alice_client):
    period_end = timezone.now() - timedelta(days=2)
    Customer.objects.filter(pk=alice.pk).update(
        subscription_status=SubscriptionStatus.PAST_DUE,
        current_period_start=period_end - timedelta(days=30),
        current_period_end=period_end,
    )
    stops = Customer.objects.get(pk=alice.pk).suspended_from()
    page = text(alice_client.get("/dashboard/"))
    assert "Your payment is past due." in page
    assert f"API access stops on {stops:%-d %B %Y, %H:%M} UTC" in page


def test_an_unpaid_account_is_shown_as_suspended(alice, alice_client):
    Customer.objects.filter(pk=alice.pk).update(subscription_status=SubscriptionStatus.UNPAID)
    assert "API access is suspended for non-payment" in text(alice_client.get("/dashboard/"))


def test_a_customer_in_good_standing_gets_no_billing_warning(alice_client):
    assert 'id="billing-warning"' not in alice_client.get("/dashboard/").content.decode()


def test_every_other_tier_is_offered_through_checkout(alice_client, default_tiers):
    html = alice_client.get("/dashboard/").content.decode()
    assert html.count('action="/billing/checkout/"') == 2
    assert 'name="tier" value="pro"' in html
    assert 'name="tier" value="enterprise"' in html
    assert 'name="tier" value="free"' not in html  # her own plan: a badge, no button
    assert "Your plan" in html


def test_a_cheaper_tier_is_a_downgrade(alice, alice_client, default_tiers):
    Customer.objects.filter(pk=alice.pk).update(tier=default_tiers["pro"])
    page = text(alice_client.get("/dashboard/"))
    assert "Downgrade to Free" in page
    assert "Upgrade to Enterprise" in page


def test_manage_billing_appears_once_stripe_knows_the_customer(alice, alice_client):
    assert 'action="/billing/portal/"' not in alice_client.get("/dashboard/").content.decode()
    Customer.objects.filter(pk=alice.pk).update(stripe_customer_id="cus_123")
    assert 'action="/billing/portal/"' in alice_client.get("/dashboard/").content.decode()


def test_the_spending_cap_form_is_only_for_tiers_with_overage(alice, alice_client, default_tiers):
    assert 'name="cap"' not in alice_client.get("/dashboard/").content.decode()
    Tier.objects.filter(slug="free").update(overage_price_per_1000="0.50")
    Customer.objects.filter(pk=alice.pk).update(overage_spending_cap="12.50")
    html = alice_client.get("/dashboard/").content.decode()
    assert 'action="/billing/spending-cap/"' in html
    assert 'name="cap" id="id_cap"' in html
    assert 'value="12.50"' in html


def test_a_bad_spending_cap_comes_back_as_a_message(alice, alice_client, default_tiers):
    Tier.objects.filter(slug="free").update(overage_price_per_1000="0.50")
    response = alice_client.post("/billing/spending-cap/", {"cap": "-3"}, follow=True)
    assert response.status_code == 200
    assert "Spending cap:" in text(response)


def test_the_quick_start_uses_the_customers_key_prefix(alice_client, api_key):
    page = text(alice_client.get("/dashboard/"))
    assert f'curl -H "Authorization: Bearer {api_key.api_key.prefix}XXXX…"' in page
    assert api_key.raw_key not in page
