import re

from django.test import Client
from rest_framework.test import APIClient

from apikeys.models import APIKey

from .pages import text


def shown_key(response) -> str:
    return re.search(
        r'id="new-key" class="secret" type="text" value="([^"]+)"', response.content.decode()
    ).group(1)


def echo_status(raw_key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get("/api/v1/echo?msg=hi").status_code


def test_an_unconfirmed_user_sees_no_key_form(newcomer_client):
    html = newcomer_client.get("/dashboard/").content.decode()
    assert 'action="/dashboard/keys/"' not in html
    assert "Confirm your email address to create API keys." in html


def test_an_unconfirmed_user_cannot_create_a_key_by_posting_anyway(newcomer_client):
    response = newcomer_client.post("/dashboard/keys/", {"name": "sneaky"}, follow=True)
    assert not APIKey.objects.exists()
    assert "Confirm your email address before creating API keys" in text(response)


NEW_KEY = {"name": "production", "scopes": ["api"]}


def test_creating_a_key_shows_it_once_and_it_works(alice_client):
    response = alice_client.post("/dashboard/keys/", NEW_KEY, follow=True)
    assert response.status_code == 200
    raw_key = shown_key(response)
    assert APIKey.objects.get(name="production").prefix in raw_key
    assert echo_status(raw_key) == 200


def test_the_page_with_the_new_key_is_never_cached(alice_client):
    response = alice_client.post("/dashboard/keys/", NEW_KEY, follow=True)
    assert "no-store" in response["Cache-Control"]


def test_the_dashboard_lists_the_key_by_prefix_never_in_full(alice_client):
    raw_key = shown_key(alice_client.post("/dashboard/keys/", NEW_KEY, follow=True))
    html = alice_client.get("/dashboard/").content.decode()
    assert raw_key not in html
    assert f"<code>{APIKey.objects.get().prefix}…</code>" in html
    assert "production" in html


def test_a_blank_name_is_refused_with_a_message(alice_client):
    response = alice_client.post("/dashboard/keys/", {"name": "   "})
    assert response.status_code == 400
    assert "This field is required." in text(response)
    assert not APIKey.objects.exists()


def test_a_name_too_long_is_refused_with_a_message(alice_client):
    response = alice_client.post("/dashboard/keys/", {"name": "k" * 101})
    assert response.status_code == 400
    assert "at most 100 characters" in text(response)


def test_revoking_a_key_stops_it_at_once(alice_client, api_key, django_capture_on_commit_callbacks):
    assert echo_status(api_key.raw_key) == 200  # its context is cached now
    with django_capture_on_commit_callbacks(execute=True):  # the invalidation runs on commit
        response = alice_client.post(f"/dashboard/keys/{api_key.api_key.pk}/revoke/", follow=True)
    assert "is revoked" in text(response)
    assert echo_status(api_key.raw_key) == 401


def test_revoking_twice_says_so(alice_client, revoked_key):
    response = alice_client.post(f"/dashboard/keys/{revoked_key.api_key.pk}/revoke/", follow=True)
    assert "was already revoked" in text(response)


def test_rotating_a_key_replaces_it_with_one_of_the_same_name_and_scopes(
    alice_client, api_key, django_capture_on_commit_callbacks
):
    APIKey.objects.filter(pk=api_key.api_key.pk).update(scopes=["api", "reports"])
    assert echo_status(api_key.raw_key) == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/dashboard/keys/{api_key.api_key.pk}/rotate/", follow=True)
    new_key = shown_key(response)
    replacement = APIKey.objects.exclude(pk=api_key.api_key.pk).get()
    assert (replacement.name, replacement.scopes) == ("laptop", ["api", "reports"])
    assert echo_status(new_key) == 200
    assert echo_status(api_key.raw_key) == 401


def test_a_revoked_key_cannot_be_rotated(alice_client, revoked_key):
    response = alice_client.post(f"/dashboard/keys/{revoked_key.api_key.pk}/rotate/", follow=True)
    assert "is revoked or expired" in text(response)
    assert APIKey.objects.count() == 1


def test_another_customers_key_is_not_found_and_stays_untouched(alice_client, bob_key):
    pk = bob_key.api_key.pk
    assert alice_client.post(f"/dashboard/keys/{pk}/revoke/").status_code == 404
    assert alice_client.post(f"/dashboard/keys/{pk}/rotate/").status_code == 404
    assert echo_status(bob_key.raw_key) == 200
    assert APIKey.objects.filter(customer=bob_key.api_key.customer).count() == 1


def test_another_customers_keys_are_not_listed(alice_client, bob_key):
    html = alice_client.get("/dashboard/").content.decode()
    assert bob_key.api_key.prefix not in html
    assert "bob&#x27;s server" not in html


def test_an_unknown_key_is_not_found(alice_client):
    assert alice_client.post("/dashboard/keys/999999/revoke/").status_code == 404


def test_key_actions_take_a_post(alice_client, api_key):
    assert alice_client.get(f"/dashboard/keys/{api_key.api_key.pk}/revoke/").status_code == 405
    assert alice_client.get("/dashboard/keys/").status_code == 405


def test_an_anonymous_post_is_sent_to_log_in(client, api_key):
    response = client.post(f"/dashboard/keys/{api_key.api_key.pk}/revoke/")
    assert response["Location"].startswith("/accounts/login/")
    assert api_key.api_key.revoked_at is None


def test_key_forms_need_their_csrf_token(alice, api_key):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice.user)
    assert client.post("/dashboard/keys/", {"name": "forged"}).status_code == 403
    assert client.post(f"/dashboard/keys/{api_key.api_key.pk}/revoke/").status_code == 403
    assert APIKey.objects.count() == 1
    assert echo_status(api_key.raw_key) == 200


def test_every_form_on_the_dashboard_carries_a_csrf_token(alice_client, api_key):
    html = alice_client.get("/dashboard/").content.decode()
    forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S)
    assert len(forms) >= 4
    assert all("csrfmiddlewaretoken" in form for form in forms)


def test_an_unconfirmed_user_cannot_rotate_a_key_made_elsewhere(newcomer_client, api_key):
    response = newcomer_client.post(f"/dashboard/keys/{api_key.api_key.pk}/rotate/", follow=True)
    assert "Confirm your email address before creating API keys" in text(response)
    assert APIKey.objects.get().revoked_at is None
