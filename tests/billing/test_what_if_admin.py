"""The what-if page in admin: who may see it, its errors, its figures and its
"Apply these values" button."""

import re
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from plans.models import Tier
from tests.utils import paying_customer_with_usage, staff_user, view_permissions

from ..web.pages import text

URL = "/admin/plans/tier/what-if/"


@pytest.fixture
def tier_editor(db, django_user_model):
    """Staff who may change tiers, and nothing else about billing."""
    user = staff_user(
        django_user_model, "ted", *view_permissions(), Permission.objects.get(codename="change_tier")
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def heavy_pro_customer(other_customer, default_tiers):
    """Bob, paying for Pro, who used 30,000 requests over the last 30 days."""
    return paying_customer_with_usage(other_customer)


def what_if(client, tier: Tier, **values):
    return client.get(URL, {"tier": tier.pk, **values})


def hidden_inputs(response) -> dict:
    form = re.search(
        r'<form method="post" action="([^"]+)"[^>]*id="apply-form">(.*?)</form>',
        response.content.decode(),
        re.S,
    )
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    return form.group(1), {name: unescape(value) for name, value in fields.items()}


def test_staff_who_may_change_tiers_see_the_page(tier_editor, default_tiers):
    response = what_if(tier_editor, default_tiers["pro"])
    assert response.status_code == 200
    assert "0 customers on the tier" in text(response)


def test_staff_who_may_only_view_tiers_are_refused(view_only_client, default_tiers):
    assert what_if(view_only_client, default_tiers["pro"]).status_code == 403


def test_a_visitor_is_sent_to_the_admin_login(client, default_tiers):
    response = what_if(client, default_tiers["pro"])
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_without_a_tier_chosen_the_first_one_is_shown(admin_client, default_tiers):
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert response.context["tier"] == default_tiers["free"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"price": "abc"}, "price"),
        ({"price": "-1"}, "price"),
        ({"quota": "-5"}, "quota"),
        ({"quota": "0"}, "quota"),
        ({"quota": "1e400"}, "quota"),
        ({"burst": "many"}, "burst"),
        ({"overage_price_per_1000": "-0.5"}, "overage_price_per_1000"),
    ],
)
def test_bad_values_get_form_errors_not_a_500(admin_client, default_tiers, values, field):
    pro = default_tiers["pro"]
    current = {"price": pro.price, "quota": pro.quota, "burst": pro.burst, "overage_price_per_1000": ""}
    response = what_if(admin_client, pro, **{**current, **values})
    assert response.status_code == 400
    assert field in response.context["values_form"].errors
    assert "what_if" not in response.context


def test_an_unknown_tier_gets_a_form_error(admin_client, default_tiers):
    response = admin_client.get(URL, {"tier": "nope"})
    assert response.status_code == 400
    assert "tier" in response.context["pick"].errors


def test_overage_on_a_daily_quota_is_refused_as_the_change_form_refuses_it(admin_client, default_tiers):
    daily = Tier.objects.create(slug="daily", name="Daily", price=5, quota=100, quota_period="day", burst=5)
    response = what_if(admin_client, daily, price="5", quota="100", burst="5", overage_price_per_1000="1")
    assert response.status_code == 400
    assert "overage_price_per_1000" in response.context["values_form"].errors


def test_a_lower_quota_shows_the_customer_who_would_hit_429s(admin_client, heavy_pro_customer, default_tiers):
    response = what_if(admin_client, default_tiers["pro"], price="29", quota="20000", burst="20")
    assert response.status_code == 200
    page = text(response)
    assert "Customers who would hit 429 for the quota 0 1" in page
    assert "Requests refused for the quota 0 10,000" in page


def test_an_overage_price_shows_the_revenue_change(admin_client, heavy_pro_customer, default_tiers):
    pro = default_tiers["pro"]
    response = what_if(admin_client, pro, price="29", quota="20000", burst="20", overage_price_per_1000="2")
    assert "Overage $0.00 $20.00" in text(response)  # money as the site's LANGUAGE_CODE (en-us) writes it
    assert "Change +$20.00" in text(response)


def test_the_page_saves_nothing(admin_client, heavy_pro_customer, default_tiers):
    pro = default_tiers["pro"]
    what_if(admin_client, pro, price="1", quota="5", burst="1")
    pro.refresh_from_db()
    assert (pro.price, pro.quota, pro.burst) == (Decimal("29.00"), 50_000, 20)


def test_the_page_refuses_a_post(admin_client, default_tiers):
    assert admin_client.post(URL, {"tier": default_tiers["pro"].pk}).status_code == 405


def test_apply_saves_through_the_change_form_and_the_api_enforces_it_at_once(
    admin_client, key_client, default_tiers, django_capture_on_commit_callbacks
):
    free = default_tiers["free"]
    assert key_client.get("/api/v1/echo?msg=hi").status_code == 200  # Alice's key context is cached
    response = what_if(admin_client, free, price="0", quota="1", burst="5")
    action, form = hidden_inputs(response)
    assert action == f"/admin/plans/tier/{free.pk}/change/"
    with django_capture_on_commit_callbacks(execute=True):
        saved = admin_client.post(action, form)
    assert saved.status_code == 302
    assert saved["Location"] == action  # "_continue": back on the tier's change page
    free.refresh_from_db()
    assert (free.quota, free.name, free.is_public) == (1, "Free", True)
    assert key_client.get("/api/v1/echo?msg=hi").status_code == 429


def test_unchanged_values_offer_nothing_to_apply(admin_client, default_tiers):
    pro = default_tiers["pro"]
    response = what_if(admin_client, pro, price=pro.price, quota=pro.quota, burst=pro.burst)
    assert response.status_code == 200
    assert "apply_form" not in response.context


def test_the_tier_pages_link_to_the_what_if(admin_client, default_tiers):
    pro = default_tiers["pro"]
    change_page = admin_client.get(f"/admin/plans/tier/{pro.pk}/change/").content.decode()
    assert f'href="{URL}?tier={pro.pk}"' in change_page
    assert f'href="{URL}"' in admin_client.get("/admin/plans/tier/").content.decode()


def test_the_operator_dashboard_links_to_the_what_if(admin_client, default_tiers):
    assert f'href="{URL}"' in admin_client.get("/admin/dashboard/").content.decode()
