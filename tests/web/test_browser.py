"""End to end in headless Chromium: from the landing page to a working API
call and back to a dashboard that shows it.

Debian's chromium (`make test` installs it) driven by Playwright; never a
browser that Playwright downloads. Screenshots land in artifacts/screenshots/.
"""

import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

from tests.utils import staff_user, view_permissions

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run 'make test', which installs Debian's chromium.")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


def api_status(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_for_status(url: str, key: str, expected: int, seconds: float = 3.0) -> int:
    """Revocation reaches every process within KEY_CONTEXT_TTL_SECONDS (1 s)."""
    deadline = time.monotonic() + seconds
    while (status := api_status(url, key)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return status


@pytest.fixture
def staff(django_user_model):
    """Created before the browser starts: see the note on the ORM below."""
    return django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)


@pytest.fixture
def support_staff(django_user_model):
    """Staff who may view everything in admin, revenue excepted."""
    user = staff_user(django_user_model, "sue", *view_permissions())
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


def admin_login(page, url: str, username: str) -> None:
    page.goto(url + "/admin/login/?next=/admin/dashboard/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_load_state()


# The test body touches no ORM while Playwright runs: its sync API keeps an
# asyncio loop in this thread, and Django refuses ORM calls there
# (SynchronousOnlyOperation). The server side runs in live_server's own thread.
def test_a_new_user_goes_from_the_landing_page_to_an_api_call_and_sees_it(
    live_server, default_tiers, mailoutbox, browser
):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the revoke confirmation

    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Get a free API key").click()
    page.fill("input[name=email]", "dana@example.com")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    # Signed in only once the address is confirmed: sign-up answers this page
    # whether or not the address already had an account.
    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()

    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mailoutbox[-1].body).group(0)
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))

    page.fill("input[name=name]", "laptop")
    page.get_by_role("button", name="Create key").click()
    raw_key = page.input_value("#new-key")
    assert raw_key.startswith("tk_live_")
    page.screenshot(path=SCREENSHOTS / "key-created.png")

    echo = live_server.url + "/api/v1/echo?msg=hi"
    assert api_status(echo, raw_key) == 200
    assert api_status(echo, raw_key) == 200

    page.get_by_role("link", name="Done, back to the dashboard").click()
    expect(page.locator(".usage-figure")).to_contain_text("2 of 1,000 requests")
    assert raw_key not in page.content()
    assert page.evaluate("() => Boolean(window.Chart && Chart.getChart('chart-hourly'))")
    page.screenshot(path=SCREENSHOTS / "dashboard.png", full_page=True)

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.add_cookies(page.context.cookies())
    phone_page = phone.new_page()
    phone_page.goto(live_server.url + "/dashboard/")
    phone_page.screenshot(path=SCREENSHOTS / "dashboard-phone.png", full_page=True)
    phone.close()

    page.get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("is revoked")
    assert wait_for_status(echo, raw_key, 401) == 401


def test_the_pricing_page_and_the_operator_dashboard_render(
    live_server, default_tiers, staff, support_staff, browser
):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(live_server.url + "/pricing/")
    expect(page.get_by_role("heading", name="Pro")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "pricing.png", full_page=True)

    admin_login(page, live_server.url, "ops")
    assert page.url.endswith("/admin/dashboard/")
    expect(page.locator("#figure-mrr-usd")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "admin-dashboard.png", full_page=True)

    support = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    admin_login(support, live_server.url, "sue")
    assert support.url.endswith("/admin/dashboard/")
    expect(support.locator("#revenue-hidden")).to_be_visible()
    expect(support.locator("#figure-mrr-usd")).to_have_count(0)
    support.screenshot(path=SCREENSHOTS / "admin-dashboard-without-revenue.png", full_page=True)
