"""Billing without Stripe configured (no STRIPE_SECRET_KEY): the customer is
told plainly that billing is not available, never the setting's name, and
nothing pretends a payment happened; the operator finds the reason in the log."""

import logging

import pytest

from plans.models import Customer
from tests.web.pages import text

from .conftest import messages_of
from .stripe_double import SERVER_ERROR

pytestmark = pytest.mark.django_db

NOT_AVAILABLE = "Billing is not available right now"


@pytest.fixture(autouse=True)
def without_stripe(settings):
    settings.STRIPE_SECRET_KEY = ""


def test_the_upgrade_buttons_are_disabled_with_a_short_explanation(browser):
    response = browser.get("/dashboard/")
    assert '<fieldset class="tier-grid compact" disabled' in response.content.decode()
    assert "Plans cannot be changed here right now: billing is not available." in text(response)


def test_manage_billing_is_disabled_too(browser, customer):
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id="cus_test_1")
    html = browser.get("/dashboard/").content.decode()
    assert '<button type="submit" class="secondary" disabled>Manage billing</button>' in html


def test_with_stripe_configured_the_upgrade_buttons_are_enabled(browser, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_configured"
    html = browser.get("/dashboard/").content.decode()
    assert "disabled" not in html.split('id="billing"')[1]
    assert "billing is not available" not in html


@pytest.mark.parametrize("path, data", [("/billing/checkout/", {"tier": "pro"}), ("/billing/portal/", {})])
def test_a_forged_post_says_billing_is_not_available_without_the_setting_name(browser, path, data):
    response = browser.post(path, data)
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")
    (message,) = messages_of(response)
    assert message.startswith(NOT_AVAILABLE)
    assert "STRIPE" not in message


@pytest.mark.parametrize("path, data", [("/billing/checkout/", {"tier": "pro"}), ("/billing/portal/", {})])
def test_the_page_after_a_forged_post_never_shows_an_internal_setting(browser, path, data):
    page = browser.post(path, data, follow=True).content.decode()
    assert NOT_AVAILABLE in page
    assert "STRIPE_" not in page


def test_the_operator_finds_the_reason_in_the_log(browser, caplog):
    with caplog.at_level(logging.WARNING, logger="billing.views"):
        browser.post("/billing/checkout/", {"tier": "pro"})
    assert "STRIPE_SECRET_KEY is empty" in caplog.text


def test_the_checkout_return_page_does_not_thank_for_a_payment_it_cannot_see(browser, customer):
    response = browser.get("/billing/checkout/return/?session_id=cs_test_forged")
    (message,) = messages_of(response)
    assert "Thank you" not in message
    assert message.startswith(NOT_AVAILABLE)
    assert Customer.objects.get(pk=customer.pk).tier.slug == "free"


@pytest.mark.parametrize("path", ["/billing/checkout/", "/billing/portal/", "/billing/spending-cap/"])
@pytest.mark.parametrize("method", ["get", "put"])
def test_another_method_than_post_on_a_billing_form_url_is_a_405_page_not_a_blank(browser, path, method):
    response = getattr(browser, method)(path)
    assert (response.status_code, response["Allow"]) == (405, "POST")
    assert "Method not allowed" in text(response)
    assert 'href="/dashboard/"' in response.content.decode()


def test_opening_the_webhook_url_answers_a_405_page_not_a_blank(client):
    response = client.get("/billing/stripe/webhook/")
    assert (response.status_code, response["Allow"]) == (405, "POST")
    assert "Method not allowed" in text(response)


def test_the_checkout_return_page_says_stripe_could_not_be_asked_rather_than_thank_you(
    browser, stripe_double, stripe_tiers
):
    stripe_double.fail("GET", "/v1/checkout/sessions/", SERVER_ERROR)
    response = browser.get("/billing/checkout/return/?session_id=cs_test_unanswered")
    (message,) = messages_of(response)
    assert message.startswith("We could not check your payment with Stripe just now.")
    assert "Thank you" not in message
