"""The account page in headless Chromium, on a laptop (1366x900) and a phone
(390x844): change the password, change the email (confirmed from the link
mailed), delete the account; and the plan cards with billing not configured.
Every page must fit its viewport's width. Screenshots land in
artifacts/screenshots/ (account-*.png, billing-not-available-*.png).

Debian's chromium, never a downloaded browser, as in test_browser.py. The
users are made before the browser starts: no ORM while Playwright runs (its
sync API keeps an asyncio loop in this thread).
"""

import re
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

from plans.services import customer_get_or_create

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another horse, another battery"
VIEWPORTS = {"1366x900": (1366, 900), "390x844": (390, 844)}


@pytest.fixture
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run 'make test', which installs Debian's chromium.")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(params=list(VIEWPORTS))
def size(request) -> str:
    return request.param


@pytest.fixture
def page(chromium, size):
    width, height = VIEWPORTS[size]
    context = chromium.new_context(viewport={"width": width, "height": height}, is_mobile=width < 500)
    yield context.new_page()
    context.close()


@pytest.fixture
def dana(default_tiers):
    """Dana: signed up, her address confirmed, a password set."""
    customer, _ = customer_get_or_create(email="dana@example.com")
    customer.user.set_password(PASSWORD)
    customer.user.save()
    EmailAddress.objects.create(user=customer.user, email=customer.user.email, verified=True, primary=True)
    return customer


def fits(page) -> None:
    """No page wider than its viewport (nothing to scroll sideways)."""
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width} px wide"


def shot(page, name: str, size: str) -> None:
    fits(page)
    page.screenshot(path=SCREENSHOTS / f"{name}-{size}.png", full_page=True)


def log_in(page, url: str, email="dana@example.com", password=PASSWORD) -> None:
    page.goto(url + "/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))


def open_account_page(page, size: str) -> None:
    if size == "1366x900":
        page.locator(".site-nav").get_by_role("link", name="Account", exact=True).click()
    else:  # the dashboard's own link, the other way in
        page.get_by_role("link", name="Account settings").click()
    expect(page).to_have_url(re.compile(r"/dashboard/account/$"))
    expect(page.get_by_role("heading", name="Account", exact=True)).to_be_visible()


def test_changing_the_password(live_server, dana, page, size):
    log_in(page, live_server.url)
    open_account_page(page, size)
    shot(page, "account", size)
    page.get_by_role("link", name="Change password").click()
    page.fill("input[name=oldpassword]", PASSWORD)
    page.fill("input[name=password1]", NEW_PASSWORD)
    page.fill("input[name=password2]", NEW_PASSWORD)
    shot(page, "account-password-change", size)
    page.get_by_role("button", name="Change Password").click()
    expect(page).to_have_url(re.compile(r"/dashboard/account/$"))
    expect(page.locator(".messages")).to_contain_text("Password successfully changed")
    shot(page, "account-password-changed", size)

    page.context.clear_cookies()
    log_in(page, live_server.url, password=NEW_PASSWORD)


def test_changing_the_email_takes_effect_once_confirmed(live_server, dana, page, size, mailoutbox):
    log_in(page, live_server.url)
    open_account_page(page, size)
    page.get_by_role("link", name="Change email").click()
    page.fill("input[name=email]", "dana.new@example.com")
    shot(page, "account-email-change", size)
    page.get_by_role("button", name="Change Email").click()
    page.goto(live_server.url + "/dashboard/account/")
    expect(page.locator("#pending-email")).to_contain_text("dana.new@example.com")
    expect(page.locator("#account-email")).to_contain_text("You sign in with dana@example.com")
    shot(page, "account-email-pending", size)

    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mailoutbox[-1].body).group(0)
    page.goto(link)
    shot(page, "account-email-confirm", size)
    page.get_by_role("button", name="Confirm").click()
    page.goto(live_server.url + "/dashboard/account/")
    expect(page.locator("#account-email")).to_contain_text("You sign in with dana.new@example.com")
    expect(page.locator("#pending-email")).to_have_count(0)
    shot(page, "account-email-changed", size)


def test_deleting_the_account(live_server, dana, page, size):
    log_in(page, live_server.url)
    open_account_page(page, size)
    page.get_by_role("link", name="Delete the account…").click()
    page.fill("input[name=password]", "not my password")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator(".errorlist")).to_be_visible()
    shot(page, "account-delete-refused", size)
    page.fill("input[name=password]", PASSWORD)
    shot(page, "account-delete", size)
    page.get_by_role("button", name="Delete my account").click()
    expect(page).to_have_url(re.compile(r"/dashboard/account/deleted/$"))
    expect(page.get_by_role("heading", name="Your account is deleted")).to_be_visible()
    expect(page.locator(".site-nav")).to_contain_text("Log in")
    shot(page, "account-deleted", size)

    page.goto(live_server.url + "/accounts/login/")
    page.fill("input[name=login]", "dana@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def test_without_billing_the_plan_buttons_are_disabled_and_say_why(live_server, dana, page, size, settings):
    settings.STRIPE_SECRET_KEY = ""
    log_in(page, live_server.url)
    billing = page.locator("#billing")
    billing.scroll_into_view_if_needed()
    expect(billing.locator("#billing-not-available")).to_contain_text("billing is not available")
    upgrade = billing.get_by_role("button", name="Upgrade to Pro")
    expect(upgrade).to_be_disabled()
    fits(page)
    billing.screenshot(path=SCREENSHOTS / f"billing-not-available-{size}.png")
