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
