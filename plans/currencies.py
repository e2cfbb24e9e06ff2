"""Currencies as Stripe counts them: how many minor units make one unit.

Stripe takes amounts in the currency's smallest unit: cents for usd, but yen
for jpy, which has none smaller. Three-decimal currencies (bhd, jod, kwd,
omr, tnd) take thousandths whose last digit must be 0; tiers refuse them
rather than round a price the operator typed.
"""

from decimal import Decimal

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
