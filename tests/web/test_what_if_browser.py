"""The tier what-if page in headless Chromium, on a laptop and on a phone:
from the operator dashboard to a proposal, its figures, and Apply.

Screenshots land in artifacts/screenshots/ (what-if-*.png).
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from metering.models import EndpointCost
from tests.utils import paying_customer_with_usage

from . import test_browser
from .test_browser import SCREENSHOTS, admin_login

# The browser and the superuser "ops" of the other browser tests.
browser = test_browser.browser
staff = test_browser.staff

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def pro_usage(other_customer):
    """Bob pays for Pro and used 30,000 requests in the last 30 days; each
    request measured at 10 ms of CPU. Made before the browser starts (the
    ORM is refused in Playwright's thread)."""
    paying_customer_with_usage(other_customer)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for metric, value in {"requests": 1000, "cpu_us": 10_000_000}.items():
        EndpointCost.objects.create(
            endpoint="echo", hour=hour - timedelta(hours=2), metric=metric, value=value
        )
    return other_customer


def page_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_an_operator_tries_a_lower_quota_with_overage_and_applies_it(
    live_server, default_tiers, pro_usage, staff, browser
):
    page = browser.new_context(viewport=LAPTOP).new_page()
    admin_login(page, live_server.url, "ops")
    page.locator("#what-if-link").click()
    page.select_option("#id_tier", label="Pro")
    page.get_by_role("button", name="Pick this tier").click()
    page.fill("#id_quota", "20000")
    page.fill("#id_overage_price_per_1000", "0.01")
    page.get_by_role("button", name="Show what would have happened").click()

    expect(page.locator("#row-overage-units")).to_contain_text("10,000")
    expect(page.locator("#row-revenue-change")).to_contain_text("+$0.10")
    expect(page.locator("#row-overage-margin .flag")).to_have_count(1)  # 0.01 for 1,000 requests of 10 ms
    assert page_width(page) <= LAPTOP["width"]
    page.screenshot(path=SCREENSHOTS / "what-if.png", full_page=True)

    phone = browser.new_context(viewport=PHONE, is_mobile=True)
    phone.add_cookies(page.context.cookies())
    phone_page = phone.new_page()
    phone_page.goto(page.url)
    expect(phone_page.locator("#what-if-table")).to_be_visible()
    assert page_width(phone_page) <= PHONE["width"]
    phone_page.screenshot(path=SCREENSHOTS / "what-if-phone.png", full_page=True)

    phone_page.fill("#id_quota", "-5")
    phone_page.fill("#id_price", "-1")
    phone_page.get_by_role("button", name="Show what would have happened").click()
    expect(phone_page.locator(".errorlist")).to_have_count(2)
    assert page_width(phone_page) <= PHONE["width"]
    phone_page.screenshot(path=SCREENSHOTS / "what-if-errors-phone.png", full_page=True)
    phone.close()

    page.get_by_role("button", name="Apply these values").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(page.locator("#id_quota")).to_have_value("20000")
    assert page_width(page) <= LAPTOP["width"]
    page.screenshot(path=SCREENSHOTS / "what-if-applied.png", full_page=True)
