from decimal import Decimal

from django import template

from plans.currencies import money_format, visitor_locale

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


@register.simple_tag(takes_context=True)
def price(context, amount, currency: str) -> str:
    """`{% price tier.price tier.currency %}`: "$29.00" for an American
    visitor, "29,00 $US" for a French one. Empty for no amount."""
    if amount is None:
        return ""
    return money_format(Decimal(amount), currency, locale=visitor_locale(context.get("request")))
