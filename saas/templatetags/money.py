from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def money(value) -> str:
    """A price with two decimals, or more when they matter: 29.00, 0.50, 0.0025."""
    if value is None:
        return ""
    value = Decimal(value)
    cents = value.quantize(Decimal("0.01"))
    return f"{cents}" if cents == value else f"{value.normalize():f}"
