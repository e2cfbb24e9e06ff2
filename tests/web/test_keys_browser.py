"""The keys section in headless Chromium at a laptop's and a phone's size:
create (post/redirect/get, the key shown once), rotate with an overlap window,
revoke, and no page wider than its viewport, even with a 100-character name.
Screenshots land in artifacts/screenshots/keys-<size>-<step>.png."""

import re

import pytest
from playwright.sync_api import expect

from tests.web.test_browser import PASSWORD, SCREENSHOTS, api_status, browser, wait_for_status  # noqa: F401

SIZES = {"desktop": (1366, 900), "phone": (390, 844)}
LONG_NAME = "k" * 100


@pytest.fixture
def alice_with_password(alice):
    alice.user.set_password(PASSWORD)
    alice.user.save(update_fields=["password"])
    return alice


def assert_fits(page, width: int) -> None:
    scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} is {scroll_width} px wide in a {width} px viewport"


def shot(page, size: str, step: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"keys-{size}-{step}.png", full_page=True)


def log_in(page, url: str, email: str) -> None:
    page.goto(url + "/accounts/login/?next=/dashboard/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))


# No ORM in the test body while Playwright runs (see tests/web/test_browser.py):
# the personas are made by fixtures before the browser starts.
@pytest.mark.parametrize("size", SIZES)
def test_a_key_is_created_rotated_with_an_overlap_and_revoked(
    live_server,
    alice_with_password,
    browser,  # noqa: F811 (the fixture, imported above)
    size,
):
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=size == "phone")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the rotate and revoke confirmations
    echo = live_server.url + "/api/v1/echo?msg=hi"
    log_in(page, live_server.url, alice_with_password.user.email)
    assert_fits(page, width)

    # Create: the POST redirects to the page that shows the key once.
    page.fill("input[name=name]", LONG_NAME)
    page.select_option("select[name=expires_in]", "30d")
    page.get_by_role("button", name="Create key").click()
    expect(page).to_have_url(re.compile(r"/dashboard/keys/new/$"))
    first_key = page.input_value("#new-key")
    assert first_key.startswith("tk_live_")
    expect(page.locator("#new-key-facts")).to_contain_text("Expires:")
    assert_fits(page, width)
    shot(page, size, "created")
    assert api_status(echo, first_key) == 200

    page.reload()  # shows nothing again and creates nothing
    expect(page).to_have_url(re.compile(r"/dashboard/#keys$"))
    expect(page.locator(".messages")).to_contain_text("was shown once")
    expect(page.locator("#new-key")).to_have_count(0)
    expect(page.locator("#active-keys tbody tr")).to_have_count(1)
    expect(page.locator("#key-count")).to_contain_text("1 of 20 active keys")
    expect(page.locator("#active-keys .key-name")).to_have_text(LONG_NAME)
    assert_fits(page, width)
    shot(page, size, "dashboard")

    # Rotate, keeping the old key an hour.
    page.select_option("#active-keys select[name=overlap]", "1h")
    page.get_by_role("button", name="Rotate").click()
    expect(page).to_have_url(re.compile(r"/dashboard/keys/new/$"))
    expect(page.locator("#replaced")).to_contain_text("keeps working until")
    second_key = page.input_value("#new-key")
    assert second_key != first_key
    assert_fits(page, width)
    shot(page, size, "rotated")
    assert api_status(echo, second_key) == 200
    assert api_status(echo, first_key) == 200  # inside its overlap window

    page.get_by_role("link", name="Done, back to the dashboard").click()
    retiring = page.locator("tr.key-retiring")
    expect(retiring).to_contain_text("Retiring: ends in 59 minutes")
    expect(retiring.get_by_role("button", name="Rotate")).to_have_count(0)
    assert_fits(page, width)
    shot(page, size, "retiring")
    page.locator("#keys").screenshot(path=SCREENSHOTS / f"keys-{size}-retiring-section.png")

    # The countdown runs on without a reload (static/js/keys.js).
    page.clock.install()
    page.reload()
    page.clock.fast_forward("30:00")
    expect(retiring.locator("[data-ends-at]")).to_have_text(
        re.compile(r"Retiring: ends in 2[89]\u00a0minutes")
    )
    page.clock.fast_forward("31:00")
    expect(retiring.locator("[data-ends-at]")).to_have_text("Ended: this key no longer works")

    # Revoke the old key before its window ends: it stops now, and is folded away.
    retiring.get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("is revoked")
    assert wait_for_status(echo, first_key, 401) == 401
    assert api_status(echo, second_key) == 200
    folded = page.locator("#inactive-keys")
    expect(folded.locator("summary")).to_have_text("Revoked and expired keys (1)")
    expect(folded.locator("tbody tr")).not_to_be_visible()
    folded.locator("summary").click()
    expect(folded.locator("tbody tr")).to_be_visible()
    expect(page.locator("#active-keys tbody tr")).to_have_count(1)
    expect(page.locator("#key-usage")).to_contain_text("api:echo")
    assert_fits(page, width)
    shot(page, size, "revoked")
    context.close()
