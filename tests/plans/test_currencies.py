from decimal import Decimal

from plans.currencies import money_format

NBSP = "\xa0"  # CLDR keeps amount and symbol on one line


def test_it_writes_dollars_as_american_english_does():
    assert money_format(Decimal("29.00"), "usd", locale="en_US") == "$29.00"


def test_it_writes_dollars_as_french_does():
    assert money_format(Decimal("29.00"), "usd", locale="fr_FR") == f"29,00{NBSP}$US"


def test_it_writes_euros_as_german_does():
    assert money_format(Decimal("1234.50"), "eur", locale="de_DE") == f"1.234,50{NBSP}€"


def test_a_zero_decimal_currency_shows_no_cents():
    assert money_format(Decimal("1000"), "jpy", locale="en_US") == "¥1,000"


def test_a_price_per_1000_requests_keeps_the_digits_that_matter():
    assert money_format(Decimal("0.0025"), "usd", locale="en_US") == "$0.0025"
    assert money_format(Decimal("0.5000"), "usd", locale="en_US") == "$0.50"


def test_a_locale_it_does_not_know_falls_back_to_the_default_language(settings):
    settings.LANGUAGE_CODE = "en-us"
    assert money_format(Decimal("29"), "usd", locale="xx_YY") == "$29.00"
