"""Upgrading through Stripe Checkout, managing billing in the Customer Portal,
the overage spending cap."""

import time
from decimal import Decimal

import pytest
from django.test import Client

from plans.models import Customer, SubscriptionStatus

from .conftest import messages_of
from .stripe_double import CARD_DECLINED, RATE_LIMITED, SERVER_ERROR

pytestmark = pytest.mark.django_db


def fresh(customer) -> Customer:
    return Customer.objects.select_related("tier").get(pk=customer.pk)


def test_upgrading_redirects_to_a_subscription_checkout_with_exact_parameters(
    browser, customer, stripe_double, stripe_tiers
):
    response = browser.post("/billing/checkout/", {"tier": "pro"})
    (created,) = stripe_double.requests_to("POST", "/v1/checkout/sessions")
    stripe_customer = fresh(customer).stripe_customer_id
    assert response.status_code == 303
    assert (
        response["Location"] == stripe_double.checkout_sessions[response["Location"].rsplit("/", 1)[1]]["url"]
    )
    assert created.params == {
        "mode": "subscription",
        "customer": stripe_customer,
        "client_reference_id": str(customer.pk),
        "line_items": [{"price": stripe_tiers["pro"].stripe_price_id, "quantity": "1"}],
        "metadata": {"customer_id": str(customer.pk), "tier": "pro"},
        "subscription_data": {"metadata": {"customer_id": str(customer.pk), "tier": "pro"}},
        "success_url": "http://testserver/billing/checkout/return/?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://testserver/dashboard/",
    }
    assert created.headers["stripe-version"] == "2026-10-28.endive"


def test_the_stripe_customer_is_created_once_with_an_idempotency_key(
    browser, customer, stripe_double, stripe_tiers
):
    browser.post("/billing/checkout/", {"tier": "pro"})
    browser.post("/billing/checkout/", {"tier": "enterprise"})
    (created,) = stripe_double.requests_to("POST", "/v1/customers")
    assert created.params == {"email": "alice@example.com", "metadata": {"customer_id": str(customer.pk)}}
    assert created.headers["idempotency-key"] == f"customer-{customer.pk}"
    assert len(stripe_double.requests_to("POST", "/v1/checkout/sessions")) == 2


def test_an_overage_tiers_checkout_adds_its_metered_price(browser, stripe_double, stripe_tiers):
    browser.post("/billing/checkout/", {"tier": "scale"})
    (created,) = stripe_double.requests_to("POST", "/v1/checkout/sessions")
    scale = stripe_tiers["scale"]
    assert created.params["line_items"] == [
        {"price": scale.stripe_price_id, "quantity": "1"},
        {"price": scale.stripe_overage_price_id},
    ]


def test_nothing_changes_until_stripe_confirms(browser, customer, stripe_double, stripe_tiers):
    location = browser.post("/billing/checkout/", {"tier": "pro"})["Location"]
    session_id = location.rsplit("/", 1)[1]
    response = browser.get(f"/billing/checkout/return/?session_id={session_id}")  # session still open
    assert response.status_code == 302
    assert fresh(customer).tier.slug == "free"
    assert "not complete yet" in messages_of(response)[0]


def test_the_return_page_applies_a_completed_checkout_fetched_from_stripe(
    browser, customer, stripe_double, stripe_tiers
):
    location = browser.post("/billing/checkout/", {"tier": "pro"})["Location"]
    session = stripe_double.checkout_sessions[location.rsplit("/", 1)[1]]
    now = int(time.time())
    subscription = stripe_double.add_subscription(
        customer=session["customer"],
        price_ids=[stripe_tiers["pro"].stripe_price_id],
        period_start=now,
        period_end=now + 30 * 86_400,
        metadata=session["metadata"],
    )
    session.update(status="complete", subscription=subscription["id"])
    response = browser.get(f"/billing/checkout/return/?session_id={session['id']}")
    customer = fresh(customer)
    assert (customer.tier.slug, customer.subscription_status) == ("pro", SubscriptionStatus.ACTIVE)
    assert messages_of(response) == ["You are now on Pro."]


def test_another_customers_checkout_session_is_refused(
    browser, customer, other_customer, stripe_double, stripe_tiers
):
    other = Client()
    other.force_login(other_customer.user)
    Customer.objects.filter(pk=other_customer.pk).update(tier=stripe_tiers["free"])
    session_id = other.post("/billing/checkout/", {"tier": "pro"})["Location"].rsplit("/", 1)[1]
    stripe_double.checkout_sessions[session_id].update(status="complete", subscription="sub_x")
    response = browser.get(f"/billing/checkout/return/?session_id={session_id}")
    assert messages_of(response) == ["That Checkout session is not yours."]
    assert fresh(customer).tier.slug == "free"


@pytest.mark.parametrize("session_id", ["", "nonsense", "cs_test_unknown"])
def test_a_bad_session_id_on_return_gives_a_message_not_an_error(
    browser, stripe_double, stripe_tiers, session_id
):
    response = browser.get(f"/billing/checkout/return/?session_id={session_id}")
    assert response.status_code == 302
    assert messages_of(response)


@pytest.mark.parametrize(
    "answer, message",
    [
        (SERVER_ERROR, "Stripe is not answering right now"),
        (RATE_LIMITED, "Stripe is not answering right now"),
        (CARD_DECLINED, "Your card was declined."),
    ],
    ids=["500", "429", "card-refused"],
)
def test_stripe_refusing_or_failing_sends_the_customer_back_with_a_message(
    browser, customer, stripe_double, stripe_tiers, answer, message
):
    stripe_double.fail("POST", "/v1/checkout/sessions", answer)
    response = browser.post("/billing/checkout/", {"tier": "pro"})
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")
    assert message in messages_of(response)[0]
    assert fresh(customer).tier.slug == "free"


def test_stripe_timing_out_sends_the_customer_back_with_a_message(browser, stripe_double, stripe_tiers):
    stripe_double.delay("POST", "/v1/checkout/sessions", seconds=2)  # the client gives up after 1 s
    started = time.monotonic()
    response = browser.post("/billing/checkout/", {"tier": "pro"})
    assert time.monotonic() - started < 2
    assert "Stripe is not answering right now" in messages_of(response)[0]


@pytest.mark.parametrize("tier", ["", "platinum", "free"])
def test_choosing_a_tier_not_on_offer_or_the_current_one_changes_nothing(
    browser, stripe_double, stripe_tiers, tier
):
    response = browser.post("/billing/checkout/", {"tier": tier})
    assert response.status_code == 302
    assert messages_of(response)
    assert not stripe_double.requests_to("POST", "/v1/checkout/sessions")


def test_checkout_needs_a_login_and_a_post(stripe_double, stripe_tiers, browser):
    assert Client().post("/billing/checkout/", {"tier": "pro"})["Location"].startswith("/accounts/login/")
    assert browser.get("/billing/checkout/").status_code == 405


def test_checkout_is_csrf_protected(customer, stripe_double, stripe_tiers):
    client = Client(enforce_csrf_checks=True)
    client.force_login(customer.user)
    assert client.post("/billing/checkout/", {"tier": "pro"}).status_code == 403


def subscribed(customer, stripe_double, tier):
    stripe_id = stripe_double._create_customer({"email": customer.user.email})[1]["id"]
    subscription = stripe_double.add_subscription(
        customer=stripe_id, price_ids=[tier.stripe_price_id], period_start=0, period_end=1
    )
    Customer.objects.filter(pk=customer.pk).update(
        tier=tier,
        stripe_customer_id=stripe_id,
        stripe_subscription_id=subscription["id"],
        subscription_status=SubscriptionStatus.ACTIVE,
    )
    return subscription


def test_a_subscriber_changes_plan_in_the_portal_not_in_a_second_checkout(
    browser, customer, stripe_double, stripe_tiers
):
    subscription = subscribed(customer, stripe_double, stripe_tiers["pro"])
    response = browser.post("/billing/checkout/", {"tier": "enterprise"})
    (portal,) = stripe_double.requests_to("POST", "/v1/billing_portal/sessions")
    assert response.status_code == 303
    assert response["Location"].startswith("https://billing.stripe.com/p/session/")
    assert portal.params["flow_data"] == {
        "type": "subscription_update",
        "subscription_update": {"subscription": subscription["id"]},
    }
    assert not stripe_double.requests_to("POST", "/v1/checkout/sessions")


def test_a_subscriber_downgrading_to_free_is_sent_to_cancel_in_the_portal(
    browser, customer, stripe_double, stripe_tiers
):
    subscription = subscribed(customer, stripe_double, stripe_tiers["pro"])
    browser.post("/billing/checkout/", {"tier": "free"})
    (portal,) = stripe_double.requests_to("POST", "/v1/billing_portal/sessions")
    assert portal.params["flow_data"] == {
        "type": "subscription_cancel",
        "subscription_cancel": {"subscription": subscription["id"]},
    }
    assert fresh(customer).tier.slug == "pro"  # until Stripe says the subscription ended


def test_manage_billing_opens_the_customer_portal(browser, customer, stripe_double, stripe_tiers):
    subscribed(customer, stripe_double, stripe_tiers["pro"])
    response = browser.post("/billing/portal/")
    (portal,) = stripe_double.requests_to("POST", "/v1/billing_portal/sessions")
    assert response.status_code == 303
    assert portal.params == {
        "customer": fresh(customer).stripe_customer_id,
        "return_url": "http://testserver/dashboard/",
    }


def test_the_portal_failing_sends_the_customer_back_with_a_message(
    browser, customer, stripe_double, stripe_tiers
):
    subscribed(customer, stripe_double, stripe_tiers["pro"])
    stripe_double.fail("POST", "/v1/billing_portal/sessions", SERVER_ERROR)
    response = browser.post("/billing/portal/")
    assert response["Location"] == "/dashboard/"
    assert "Stripe is not answering" in messages_of(response)[0]


# The overage spending cap ------------------------------------------------------------


@pytest.fixture
def on_scale(customer, stripe_tiers):
    Customer.objects.filter(pk=customer.pk).update(tier=stripe_tiers["scale"])
    return customer


def test_a_spending_cap_is_saved_and_reaches_enforcement(
    browser, on_scale, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/billing/spending-cap/", {"cap": "5.00"})
    customer = fresh(on_scale)
    assert customer.overage_spending_cap == Decimal("5.00")
    assert customer.overage_ceiling == 10 + 2500  # quota + $5 at $2 per 1,000
    assert messages_of(response) == ["Overage is capped at $5.00 a month."]


def test_the_cap_is_confirmed_in_the_visitor_locale(browser, on_scale):
    response = browser.post("/billing/spending-cap/", {"cap": "5.00"}, headers={"Accept-Language": "fr-FR"})
    assert messages_of(response) == ["Overage is capped at 5,00\xa0$US a month."]


def test_an_empty_cap_removes_it(browser, on_scale):
    Customer.objects.filter(pk=on_scale.pk).update(overage_spending_cap=Decimal("5"))
    browser.post("/billing/spending-cap/", {"cap": ""})
    assert fresh(on_scale).overage_spending_cap is None


@pytest.mark.parametrize("cap", ["-1", "abc", "1.234", "123456789012"])
def test_a_bad_cap_is_refused_with_a_message(browser, on_scale, cap):
    response = browser.post("/billing/spending-cap/", {"cap": cap})
    assert response.status_code == 302
    assert messages_of(response)[0].startswith("Spending cap: ")
    assert fresh(on_scale).overage_spending_cap is None


def test_a_hard_tier_has_no_cap_to_set(browser, customer, stripe_tiers):
    response = browser.post("/billing/spending-cap/", {"cap": "5"})
    assert "no overage to cap" in messages_of(response)[0]
