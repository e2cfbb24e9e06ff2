"""The keys section of the dashboard (issue 16, keys): post/redirect/get with
the new key shown once, expiry and scopes, rotation with an overlap window,
revoked keys folded away, the limit, key names, usage per key and endpoint."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from apikeys.models import APIKey
from apikeys.services import api_key_create
from metering.models import UsageRecord

from .pages import text

NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def at_noon(time_machine, alice, alice_client):
    time_machine.move_to(NOW, tick=False)
    alice_client.force_login(alice.user)  # a session that has not expired by then
    return time_machine


def shown_key(response) -> str | None:
    match = re.search(r'id="new-key" class="secret" type="text" value="([^"]+)"', response.content.decode())
    return match.group(1) if match else None


def call(raw_key: str, path: str = "/api/v1/echo?msg=hi") -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get(path).status_code


def test_creating_a_key_redirects_to_a_page_that_shows_it(alice_client):
    response = alice_client.post("/dashboard/keys/", {"name": "production", "scopes": ["api"]})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/keys/new/"
    page = alice_client.get("/dashboard/keys/new/")
    raw_key = shown_key(page)
    assert raw_key.startswith(APIKey.objects.get().prefix)
    assert "no-store" in page["Cache-Control"]
    assert call(raw_key) == 200


def test_reloading_the_new_key_page_neither_shows_the_key_again_nor_creates_one(alice_client):
    alice_client.post("/dashboard/keys/", {"name": "production", "scopes": ["api"]})
    raw_key = shown_key(alice_client.get("/dashboard/keys/new/"))
    again = alice_client.get("/dashboard/keys/new/", follow=True)
    assert raw_key not in again.content.decode()
    assert "was shown once" in text(again)
    assert APIKey.objects.count() == 1


@pytest.mark.parametrize("action", ["rotate", "revoke"])
def test_opening_a_key_action_in_the_browser_answers_the_405_page_and_changes_nothing(
    alice_client, api_key, action
):
    response = alice_client.get(f"/dashboard/keys/{api_key.api_key.pk}/{action}/")
    assert response.status_code == 405
    assert "Method not allowed" in text(response)
    assert 'href="/dashboard/"' in response.content.decode()
    assert APIKey.objects.get().status() == "active"


def test_a_key_can_be_created_with_an_expiry(alice_client, at_noon):
    alice_client.post("/dashboard/keys/", {"name": "ci", "expires_in": "30d", "scopes": ["api"]})
    assert APIKey.objects.get().expires_at == NOW + timedelta(days=30)


def test_a_key_without_an_expiry_never_expires(alice_client):
    alice_client.post("/dashboard/keys/", {"name": "ci", "expires_in": "never", "scopes": ["api"]})
    assert APIKey.objects.get().expires_at is None


def test_the_create_form_offers_expiry_and_scopes(alice_client):
    html = alice_client.get("/dashboard/").content.decode()
    assert 'name="expires_in"' in html
    assert 'name="scopes" value="api"' in html


def test_an_unknown_scope_is_refused_with_a_message(alice_client):
    response = alice_client.post("/dashboard/keys/", {"name": "ci", "scopes": ["admin"]})
    assert response.status_code == 400
    assert "Select a valid choice" in text(response)
    assert not APIKey.objects.exists()


def test_a_key_needs_at_least_one_scope(alice_client):
    response = alice_client.post("/dashboard/keys/", {"name": "ci", "scopes": []})
    assert response.status_code == 400
    assert not APIKey.objects.exists()


def test_a_name_of_one_zero_width_space_is_refused_with_a_message(alice_client):
    response = alice_client.post("/dashboard/keys/", {"name": "\u200b", "scopes": ["api"]})
    assert response.status_code == 400
    assert "visible character" in text(response)
    assert not APIKey.objects.exists()


def test_rotating_with_an_overlap_keeps_the_old_key_working_and_shows_the_time_left(
    alice_client, api_key, at_noon, django_capture_on_commit_callbacks
):
    assert call(api_key.raw_key) == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/dashboard/keys/{api_key.api_key.pk}/rotate/", {"overlap": "24h"})
    assert response["Location"] == "/dashboard/keys/new/"
    page = alice_client.get("/dashboard/keys/new/")
    new_key = shown_key(page)
    assert "keeps working until" in text(page)
    assert call(new_key) == 200
    assert call(api_key.raw_key) == 200
    at_noon.move_to(NOW + timedelta(hours=2), tick=False)
    dashboard = text(alice_client.get("/dashboard/"))
    assert "Retiring: ends in 22 hours" in dashboard
    at_noon.move_to(NOW + timedelta(hours=24, seconds=1), tick=False)
    assert call(api_key.raw_key) == 401
    assert call(new_key) == 200


def test_rotating_with_no_overlap_stops_the_old_key_now(
    alice_client, api_key, django_capture_on_commit_callbacks
):
    assert call(api_key.raw_key) == 200
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(f"/dashboard/keys/{api_key.api_key.pk}/rotate/", {"overlap": "none"})
    assert call(shown_key(alice_client.get("/dashboard/keys/new/"))) == 200
    assert call(api_key.raw_key) == 401


def test_the_rotate_form_offers_overlap_windows(alice_client, api_key):
    html = alice_client.get("/dashboard/").content.decode()
    for value in ("none", "1h", "24h", "7d"):
        assert f'value="{value}"' in html


def test_revoked_and_expired_keys_are_folded_away_from_the_active_ones(
    alice_client, api_key, revoked_key, expired_key
):
    html = alice_client.get("/dashboard/").content.decode()
    folded = re.search(r'<details[^>]*id="inactive-keys".*?</details>', html, flags=re.S).group(0)
    assert "<summary>" in folded and "Revoked and expired keys (2)" in folded
    assert revoked_key.api_key.prefix in folded and expired_key.api_key.prefix in folded
    assert api_key.api_key.prefix not in folded
    assert "<details open" not in folded


def test_creating_past_the_limit_says_so(alice_client, settings):
    settings.API_KEYS_PER_CUSTOMER = 2
    for number in range(3):
        response = alice_client.post("/dashboard/keys/", {"name": f"key {number}", "scopes": ["api"]})
    assert response.status_code == 400
    assert "You have 2 active keys, the most allowed" in text(response)
    assert APIKey.objects.count() == 2


def test_the_key_list_shows_how_many_keys_are_active_of_the_limit(alice_client, api_key, settings):
    settings.API_KEYS_PER_CUSTOMER = 20
    assert "1 of 20 active keys" in text(alice_client.get("/dashboard/"))


def test_a_long_key_name_is_allowed_to_wrap(alice_client, alice):
    api_key_create(customer=alice, name="k" * 100)
    html = alice_client.get("/dashboard/").content.decode()
    assert re.search(r'<td data-label="Name" class="key-name">k{100}</td>', html)


def test_usage_per_key_and_endpoint_this_period_is_shown(alice, alice_client, api_key, at_noon):
    other = api_key_create(customer=alice, name="ci")
    UsageRecord.objects.create(
        customer=alice, api_key=api_key.api_key, endpoint="api:echo", hour=NOW - timedelta(hours=3), count=40
    )
    # Last period's usage is not this period's.
    UsageRecord.objects.create(
        customer=alice, api_key=api_key.api_key, endpoint="api:echo", hour=NOW - timedelta(days=40), count=7
    )
    assert call(api_key.raw_key) == 200  # still pending in Redis
    assert call(other.raw_key, "/api/v1/primes?below=100") == 200
    html = alice_client.get("/dashboard/").content.decode()
    rows = re.findall(r'<tr class="usage-row">(.*?)</tr>', html, flags=re.S)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]
    assert f"laptop {api_key.api_key.prefix}… api:echo 41" in cells
    assert f"ci {other.api_key.prefix}… api:primes 1" in cells


def test_the_usage_csv_lists_only_the_customers_own_keys(alice, alice_client, api_key, bob_key, at_noon):
    assert call(api_key.raw_key) == 200
    assert call(bob_key.raw_key) == 200
    response = alice_client.get("/dashboard/keys/usage.csv")
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["key_name", "key_prefix", "endpoint", "requests", "period_start", "period_end"]
    assert [row[:4] for row in rows[1:]] == [["laptop", api_key.api_key.prefix, "api:echo", "1"]]
    assert rows[1][4] == "2027-03-01T00:00:00+00:00"


def test_the_usage_csv_needs_a_login(client, api_key):
    response = client.get("/dashboard/keys/usage.csv")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_rotating_with_an_overlap_at_the_limit_says_how_to_rotate_anyway(alice_client, api_key, settings):
    settings.API_KEYS_PER_CUSTOMER = 1
    response = alice_client.post(
        f"/dashboard/keys/{api_key.api_key.pk}/rotate/", {"overlap": "1h"}, follow=True
    )
    assert "the most allowed: rotate with no overlap" in text(response)
    assert APIKey.objects.count() == 1


def test_a_key_name_a_spreadsheet_would_run_as_a_formula_is_exported_as_text(alice, alice_client):
    created = api_key_create(customer=alice, name='=HYPERLINK("http://x")')
    assert call(created.raw_key) == 200
    rows = list(csv.reader(io.StringIO(alice_client.get("/dashboard/keys/usage.csv").content.decode())))
    assert rows[1][0] == '\'=HYPERLINK("http://x")'


def test_the_usage_csv_is_never_cached(alice_client):
    assert "no-store" in alice_client.get("/dashboard/keys/usage.csv")["Cache-Control"]
