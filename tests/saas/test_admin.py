import re

import pytest
from django.contrib.auth.models import Permission

from apikeys.models import APIKey
from plans.models import Tier
from tests.utils import staff_user

TIER_FORM = {
    "slug": "team",
    "name": "Team",
    "is_public": "on",
    "is_active": "on",
    "display_order": "4",
    "price": "79.00",
    "currency": "usd",
    "overage_price_per_1000": "",
    "stripe_price_id": "",
    "quota": "100000",
    "quota_period": "month",
    "burst": "50",
}


@pytest.mark.parametrize("model", ["plans/tier", "plans/customer", "apikeys/apikey"])
def test_each_changelist_answers(admin_client, api_key, model):
    assert admin_client.get(f"/admin/{model}/").status_code == 200


def test_the_tier_change_page_answers(admin_client, default_tiers):
    assert admin_client.get(f"/admin/plans/tier/{default_tiers['pro'].pk}/change/").status_code == 200


def test_the_customer_change_page_answers(admin_client, customer):
    assert admin_client.get(f"/admin/plans/customer/{customer.pk}/change/").status_code == 200


def test_the_api_key_change_page_answers(admin_client, api_key):
    response = admin_client.get(f"/admin/apikeys/apikey/{api_key.api_key.pk}/change/")
    assert response.status_code == 200


def test_an_operator_can_create_a_tier(admin_client, db):
    response = admin_client.post("/admin/plans/tier/add/", TIER_FORM)
    assert response.status_code == 302
    tier = Tier.objects.get(slug="team")
    assert (tier.name, tier.quota, tier.burst) == ("Team", 100_000, 50)


def test_the_tier_form_rejects_a_negative_quota(admin_client, db):
    response = admin_client.post("/admin/plans/tier/add/", {**TIER_FORM, "quota": "-1"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["quota"]
    assert not Tier.objects.filter(slug="team").exists()


def test_api_keys_cannot_be_added_in_the_admin(admin_client, db):
    assert admin_client.get("/admin/apikeys/apikey/add/").status_code == 403


def test_the_revoke_action_revokes_the_selected_keys(admin_client, api_key, expired_key):
    response = admin_client.post(
        "/admin/apikeys/apikey/",
        {"action": "revoke_selected", "_selected_action": [api_key.api_key.pk]},
    )
    assert response.status_code == 302
    assert APIKey.objects.get(pk=api_key.api_key.pk).revoked_at is not None
    assert APIKey.objects.get(pk=expired_key.api_key.pk).revoked_at is None


# Revoking needs the change permission on API keys -------------------------------------


def test_a_view_only_staff_user_is_not_offered_revoke(view_only_client, api_key):
    response = view_only_client.get("/admin/apikeys/apikey/")
    assert response.status_code == 200
    assert response.context["action_form"] is None or "revoke_selected" not in dict(
        response.context["action_form"].fields["action"].choices
    )


def test_a_view_only_staff_user_cannot_revoke_a_customers_key(view_only_client, api_key):
    view_only_client.post(
        "/admin/apikeys/apikey/", {"action": "revoke_selected", "_selected_action": [api_key.api_key.pk]}
    )
    assert APIKey.objects.get(pk=api_key.api_key.pk).revoked_at is None


def test_staff_who_may_change_keys_can_revoke_them(client, django_user_model, api_key):
    permissions = Permission.objects.filter(
        content_type__app_label="apikeys", codename__in=["view_apikey", "change_apikey"]
    )
    client.force_login(staff_user(django_user_model, "kim", *permissions))
    client.post(
        "/admin/apikeys/apikey/", {"action": "revoke_selected", "_selected_action": [api_key.api_key.pk]}
    )
    assert APIKey.objects.get(pk=api_key.api_key.pk).revoked_at is not None


# The admin login is throttled as the account login is (allauth's rate limits) ---------

ADMIN_LOGIN = "/admin/login/?next=/admin/"


def admin_login(client, username: str, password: str):
    return client.post(ADMIN_LOGIN, {"username": username, "password": password, "next": "/admin/"})


def test_after_5_failed_admin_logins_even_the_right_password_is_refused(client, view_only_staff):
    for _ in range(5):
        assert "correct username and password" in admin_login(client, "vic", "wrong").content.decode()
    response = admin_login(client, "vic", "staff password")
    assert response.status_code == 200
    assert re.search(r"Too many failed login attempts\. Try again in \d minutes", response.content.decode())
    assert client.get("/admin/").status_code == 302  # still not signed in


def test_the_right_password_within_the_limit_signs_in(client, view_only_staff):
    for _ in range(4):
        admin_login(client, "vic", "wrong")
    assert admin_login(client, "vic", "staff password")["Location"] == "/admin/"


def test_failed_account_logins_lock_the_admin_login_of_the_same_address(client, django_user_model):
    django_user_model.objects.create_user("ops@example.com", "ops@example.com", "ops password", is_staff=True)
    for _ in range(5):
        client.post("/accounts/login/", {"login": "ops@example.com", "password": "wrong"})
    response = admin_login(client, "ops@example.com", "ops password")
    assert "Too many failed login attempts" in response.content.decode()


def test_admin_login_attempts_are_throttled_per_ip(client, db, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "3/m/ip"}
    for _ in range(3):
        assert admin_login(client, "nobody", "wrong").status_code == 200
    assert admin_login(client, "nobody", "wrong").status_code == 429


def test_showing_the_admin_login_form_is_not_throttled(client, db, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "1/m/ip"}
    for _ in range(3):
        assert client.get(ADMIN_LOGIN).status_code == 200
