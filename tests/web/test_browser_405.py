"""The 405 page in headless Chromium (Debian's, as in test_browser.py) at a
laptop's and a phone's size: a page, never blank, and never wider than the
screen. Screenshots land in artifacts/screenshots/."""

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from .test_browser import SCREENSHOTS, browser  # noqa: F401 (browser: the fixture, asked for below)

SIZES = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def alice_session(alice):
    """Alice's session cookie, made before the browser starts (no ORM once Playwright runs)."""
    client = Client()
    client.force_login(alice.user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def page_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


@pytest.mark.parametrize("size", SIZES)
def test_opening_a_form_address_shows_the_405_page_within_the_screen(
    live_server, alice_session, request, size
):
    chromium = request.getfixturevalue("browser")  # after alice_session: no ORM once Playwright runs
    context = chromium.new_context(viewport=SIZES[size], is_mobile=size == "phone")
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": alice_session, "url": live_server.url}]
    )
    page = context.new_page()

    response = page.goto(live_server.url + "/dashboard/keys/")

    assert response.status == 405
    expect(page.get_by_role("heading", name="Method not allowed")).to_be_visible()
    expect(page.get_by_role("link", name="Go to your dashboard")).to_be_visible()
    assert page_width(page) <= SIZES[size]["width"]
    page.screenshot(path=SCREENSHOTS / f"method-not-allowed-{size}.png", full_page=True)
    page.get_by_role("link", name="Go to your dashboard").click()
    expect(page).to_have_url(live_server.url + "/dashboard/")
    context.close()
