"""The operator dashboard in headless Chromium on a laptop and on a phone:
nothing wider than the screen. Screenshots land in artifacts/screenshots/."""

import pytest
from django.utils import timezone

from billing.models import EventStatus, StripeEvent
from plans.models import SubscriptionStatus
from plans.services import customer_get_or_create

from .test_browser import SCREENSHOTS, admin_login, browser, staff  # noqa: F401  (fixtures)

SIZES = {"desktop": (1366, 900), "phone": (390, 844)}

# The elements wider than the viewport, to name the culprit when it fails.
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .slice(0, 8).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className)"""


@pytest.fixture
def busy_dashboard(default_tiers):
    """The longest things the page lists: a customer's email, a failed
    webhook's id and error. Made before the browser starts (see test_browser)."""
    email = "a.customer.with.a.rather.long.address@subdomain.example.com"
    customer, _ = customer_get_or_create(email=email, tier_slug="enterprise")
    customer.subscription_status = SubscriptionStatus.ACTIVE
    customer.save(update_fields=["subscription_status"])
    StripeEvent.objects.create(
        stripe_id="evt_1QwErTyUiOpAsDfGhJkLzXcVbNm1234567890",
        type="customer.subscription.updated",
        stripe_created=timezone.now(),
        payload={},
        status=EventStatus.FAILED,
        error="InvalidRequestError: No such customer: 'cus_QwErTyUiOpAsDfGhJkLzXcVbNm'; " * 4,
    )


@pytest.mark.parametrize("size", SIZES)
def test_the_operator_dashboard_is_no_wider_than_the_screen(
    live_server,
    busy_dashboard,
    staff,  # noqa: F811  (the fixture imported above)
    browser,  # noqa: F811
    size,
):
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=size == "phone")
    page = context.new_page()
    admin_login(page, live_server.url, "ops")
    assert page.url.endswith("/admin/dashboard/")
    assert page.locator("#webhooks .error").count() == 1
    page.screenshot(path=SCREENSHOTS / f"admin-dashboard-{size}.png", full_page=True)
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= width, page.evaluate(OVERFLOWING)
    context.close()
