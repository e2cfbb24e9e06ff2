"""A customer's bill for a period, from their tier and usage: pure arithmetic."""

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .models import Customer


@dataclass(frozen=True)
class ProjectedBill:
    currency: str
    flat: Decimal
    overage_units: int
    overage: Decimal
    projected_overage_units: int
    projected_total: Decimal


def projected_bill(
    customer: Customer, *, used: int, period_start: datetime, period_end: datetime, now: datetime
) -> ProjectedBill:
    """The period's bill: the flat price, the overage so far, and the total if
    usage goes on at the period's average rate (capped by the spending cap)."""
    tier = customer.tier
    elapsed = max((now - period_start).total_seconds(), 1.0)
    length = (period_end - period_start).total_seconds()
    projected_used = math.ceil(used * max(length / elapsed, 1.0))
    price = tier.overage_price_per_1000 or Decimal(0)
    overage_units = customer.overage_units(used) if price else 0
    projected_units = customer.overage_units(projected_used) if price else 0
    per_unit = price / 1000
    overage = (per_unit * overage_units).quantize(Decimal("0.01"))
    return ProjectedBill(
        currency=tier.currency,
        flat=tier.price,
        overage_units=overage_units,
        overage=overage,
        projected_overage_units=projected_units,
        projected_total=(tier.price + per_unit * projected_units).quantize(Decimal("0.01")),
    )
