"""The pricing page in headless Chromium on a laptop and on a phone, in two
locales: nothing wider than the screen, prices as the visitor writes them.
Screenshots land in artifacts/screenshots/."""

import pytest
from playwright.sync_api import expect

from .test_browser import SCREENSHOTS, browser  # noqa: F401  (fixture)

SIZES = {"desktop": (1366, 900), "phone": (390, 844)}
LOCALES = {"en-US": "$29.00", "fr-FR": "29,00\xa0$US"}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("locale", LOCALES)
def test_the_pricing_page_fits_the_screen_and_writes_prices_in_the_visitor_locale(
    live_server,
    default_tiers,
    browser,  # noqa: F811  (the fixture imported above)
    size,
    locale,
):
    width, height = SIZES[size]
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=size == "phone", locale=locale
    )
    page = context.new_page()
    page.goto(live_server.url + "/pricing/")
    pro = page.locator("article.tier", has=page.get_by_role("heading", name="Pro"))
    expect(pro.locator(".price")).to_have_text(f"{LOCALES[locale]}/month")
    page.screenshot(path=SCREENSHOTS / f"pricing-{locale}-{size}.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    context.close()
