"""Currencies as Stripe counts them (how many minor units make one unit), and
money written as a locale writes it.

Stripe takes amounts in the currency's smallest unit: cents for usd, but yen
for jpy, which has none smaller. Three-decimal currencies (bhd, jod, kwd,
omr, tnd) take thousandths whose last digit must be 0; tiers refuse them
rather than round a price the operator typed.
"""

from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency
from django.conf import settings
from django.utils.translation import get_language_from_request, to_locale

# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
# https://docs.stripe.com/currencies#three-decimal
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def minor_units_per_unit(currency: str) -> int:
    """1 for zero-decimal currencies, 100 for the rest. Three-decimal
    currencies are refused by Tier validation before they get here."""
    if currency.lower() in THREE_DECIMAL:
        raise ValueError(f"{currency}: three-decimal currencies are not supported")
    return 1 if currency.lower() in ZERO_DECIMAL else 100


def plain(amount: Decimal) -> str:
    """`amount` without trailing zeros and never in exponent form ("10", not "1E+1")."""
    return format(amount.normalize(), "f")


def visitor_locale(request) -> str:
    """The locale money is written in for this visitor: the language their
    browser asks for first among those Django knows (Accept-Language, or the
    language cookie), else LANGUAGE_CODE.

    Only money follows it: the pages are written in English, so the language
    is not activated (Django's and allauth's own strings would switch
    language in the middle of an English page).
    """
    if request is None:
        return settings.LANGUAGE_CODE
    return get_language_from_request(request)


def _babel_locale(locale: str) -> Locale:
    """`locale` ("fr_FR", "fr-fr", "fr"), or the site's LANGUAGE_CODE when
    CLDR does not know it."""
    try:
        return Locale.parse(to_locale(locale))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(to_locale(settings.LANGUAGE_CODE))


def money_format(amount: Decimal, currency: str, *, locale: str) -> str:
    """`amount` of `currency` as `locale` writes money, from CLDR (Babel):
    "$29.00" in en_US, "29,00 $US" in fr_FR, "¥1,000" (no minor unit).

    At least the currency's own decimals, and any further digit that is not
    zero: an overage price of 0.0025 per 1,000 requests is not rounded to 0.
    """
    return format_currency(amount, currency.upper(), locale=_babel_locale(locale), decimal_quantization=False)
