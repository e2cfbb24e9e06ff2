"""Writes for accounts: the customer behind every user."""

from billing.models import Customer
from billing.services import DEFAULT_TIER_SLUG, tier_get


def customer_ensure(*, user) -> Customer:
    """The user's customer, created on the default (free) tier when missing.

    Sign-up calls it, and so does the dashboard, for users made another way
    (createsuperuser, admin). The one-to-one column is unique, so concurrent
    calls end with one row: get_or_create retries its get on the conflict.
    """
    customer = Customer.objects.select_related("tier").filter(user=user).first()
    if customer is not None:
        return customer
    customer, _ = Customer.objects.select_related("tier").get_or_create(
        user=user, defaults={"tier": tier_get(slug=DEFAULT_TIER_SLUG)}
    )
    return customer
