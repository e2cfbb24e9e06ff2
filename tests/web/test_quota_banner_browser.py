"""The quota banners in headless Chromium at 1366x900 and 390x844: visible,
with the upgrade button in reach, and no page wider than its viewport.
Screenshots: artifacts/screenshots/quota-banner-<80|100>-<desktop|phone>.png, and
too-many-attempts-<desktop|phone>.png for the 429 page of the account forms."""

from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from metering.models import UsageRecord

from .test_browser import SCREENSHOTS, browser  # noqa: F401 (the browser fixture)

SIZES = {"desktop": (1366, 900), "phone": (390, 844)}


def signed_in_cookie(customer, live_server) -> dict:
    client = Client()
    client.force_login(customer.user)
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return {"name": settings.SESSION_COOKIE_NAME, "value": value, "url": live_server.url}


@pytest.fixture
def cookie(live_server, alice, api_key, percent) -> dict:
    """Alice signed in, `percent` of her 1,000 requests used. A fixture: the
    ORM must run before Playwright starts (see tests/web/test_browser.py)."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    UsageRecord.objects.create(
        customer=alice, api_key=api_key.api_key, endpoint="echo", hour=hour, count=percent * 10
    )
    return signed_in_cookie(alice, live_server)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("percent", [80, 100])
def test_the_quota_banner_fits_the_screen_with_its_upgrade_button(
    live_server,
    cookie,
    browser,  # noqa: F811 (the fixture imported above)
    size,
    percent,
):
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=size == "phone")
    context.add_cookies([cookie])
    page = context.new_page()
    page.goto(live_server.url + "/dashboard/")

    banner = page.locator("#quota-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("used up" if percent == 100 else f"{percent}% of this period’s quota")
    upgrade = banner.get_by_role("link", name="Upgrade to Pro")
    expect(upgrade).to_be_in_viewport()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.screenshot(path=SCREENSHOTS / f"quota-banner-{percent}-{size}.png", full_page=True)

    upgrade.click()
    expect(page).to_have_url(live_server.url + "/dashboard/#billing")
    expect(page.locator("#billing")).to_be_in_viewport()
    context.close()


@pytest.fixture
def signups_spent(client, default_tiers, settings):
    """One sign-up allowed per hour from this address, and used (before Playwright starts)."""
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "1/h/ip"}
    password = "pw-9f8e7d6c5b"
    form = {"email": "first@example.com", "password1": password, "password2": password}
    assert client.post("/accounts/signup/", form).status_code == 302


@pytest.mark.parametrize("size", SIZES)
def test_the_429_page_says_when_to_try_again_and_fits_the_screen(
    live_server,
    signups_spent,
    browser,  # noqa: F811 (the fixture imported above)
    size,
):
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=size == "phone")
    page = context.new_page()
    page.goto(live_server.url + "/accounts/signup/")
    page.fill("input[name=email]", "second@example.com")
    page.fill("input[name=password1]", "pw-9f8e7d6c5b")
    page.fill("input[name=password2]", "pw-9f8e7d6c5b")
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", name="Too many attempts")).to_be_visible()
    expect(page.locator("#retry-at")).to_contain_text(" UTC")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.screenshot(path=SCREENSHOTS / f"too-many-attempts-{size}.png", full_page=True)
    context.close()
