"""The API docs in headless Chromium at a laptop's and a phone's size: they
render the schema, fit the screen, and no request leaves the site.

Every request the page makes goes through a route that records it and aborts
any bound elsewhere, so the test never reaches another host either way.
"""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from .test_browser import SCREENSHOTS, browser  # noqa: F401 (the browser fixture)

SIZES = {"laptop": (1366, 900), "phone": (390, 844)}
PAGES = {"swagger": "/api/docs/", "redoc": "/api/redoc/"}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", PAGES)
def test_the_api_docs_render_locally_and_fit_the_screen(live_server, db, browser, name, size):  # noqa: F811
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=size == "phone")
    page = context.new_page()
    site = urlsplit(live_server.url).netloc
    elsewhere = []

    def keep_on_site(route):
        url = urlsplit(route.request.url)
        # data: and blob: URLs (Redoc's search worker) are made in the page itself.
        if url.scheme not in ("data", "blob") and url.netloc != site:
            elsewhere.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", keep_on_site)
    page.goto(live_server.url + PAGES[name])
    # An operation's summary: the schema was fetched and rendered.
    expect(page.get_by_text("Echo the query parameters").first).to_be_attached(timeout=15_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=SCREENSHOTS / f"api-{name}-{size}.png")
    assert elsewhere == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    context.close()
