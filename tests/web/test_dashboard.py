import json
import re
from datetime import UTC, datetime, timedelta

from django.test import Client
from django.utils import timezone

from billing.models import Customer, SubscriptionStatus, Tier
from metering.models import RefusalRecord, UsageRecord


def text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def chart(response, name) -> dict:
    found = re.search(rf'<script id="usage-{name}" type="application/json">(.*?)</script>', response.content.decode())
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
