from decimal import Decimal

from django import template
from django.conf import settings
from django.utils.translation import get_language_from_request

from plans.currencies import money_format

register = template.Library()


@register.filter
def money(value) -> str:
    """A plain amount with two decimals, or more when they matter: 29.00,
    0.50, 0.0025. For form inputs; a price shown to a reader is `{% price %}`."""
    if value is None:
        return ""
    value = Decimal(value)
    cents = value.quantize(Decimal("0.01"))
    return f"{cents}" if cents == value else f"{value.normalize():f}"


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


@register.simple_tag(takes_context=True)
def price(context, amount, currency: str) -> str:
    """`{% price tier.price tier.currency %}`: "$29.00" for an American
    visitor, "29,00 $US" for a French one. Empty for no amount."""
    if amount is None:
        return ""
    return money_format(Decimal(amount), currency, locale=visitor_locale(context.get("request")))
