"""Calls to Stripe: the catalog, customers, Checkout, the Customer Portal,
subscriptions and Billing Meter events.

Each create carries an idempotency key derived from what it creates, so a
retried task (or a second `sync_tiers`) finds or replays the same object
rather than making a new one. Objects come back as plain dicts.
"""

from decimal import Decimal

import stripe
from django.conf import settings

from plans.currencies import minor_units_per_unit, plain
from plans.models import Customer, Tier

from .stripe_api import stripe_client


def _options(idempotency_key: str | None = None) -> dict:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


def _minor_units(amount: Decimal, currency: str) -> int:
    """The amount in the currency's smallest unit (cents, or yen for jpy).
    Tier validation keeps a zero-decimal price whole, so nothing is rounded."""
    return int((amount * minor_units_per_unit(currency)).to_integral_value())


def _is_missing(error: stripe.InvalidRequestError) -> bool:
    return error.http_status == 404


# The catalog ----------------------------------------------------------------


def product_id_for(tier: Tier) -> str:
    # A custom product id: the product is found again by it, never duplicated.
    return f"tier_{tier.slug}"


def flat_price_lookup_key(tier: Tier) -> str:
    # Prices are immutable in Stripe: a new amount is a new price, found by its
    # own lookup key; subscriptions on the old price keep it.
    return f"{tier.slug}-flat-{_minor_units(tier.price, tier.currency)}-{tier.currency}"


def overage_unit_amount(tier: Tier) -> str:
    """Minor units per request as Stripe's unit_amount_decimal: a plain decimal
    string, never "1E+1" (Stripe meters count requests; the tier prices 1,000)."""
    return plain(tier.overage_price_per_1000 * minor_units_per_unit(tier.currency) / 1000)


def overage_price_lookup_key(tier: Tier) -> str:
    return f"{tier.slug}-overage-{overage_unit_amount(tier)}-{tier.currency}"


def _product_ensure(client, tier: Tier) -> dict:
    product_id = product_id_for(tier)
    try:
        product = client.v1.products.retrieve(product_id).to_dict()
    except stripe.InvalidRequestError as error:
        if not _is_missing(error):
            raise
        params = {"id": product_id, "name": tier.name, "metadata": {"tier": tier.slug}}
        return client.v1.products.create(params, _options(f"product-{product_id}")).to_dict()
    if product["name"] != tier.name or not product.get("active", True):
        product = client.v1.products.update(product_id, {"name": tier.name, "active": True}).to_dict()
    return product


def _price_ensure(client, lookup_key: str, params: dict) -> dict:
    found = client.v1.prices.list({"lookup_keys": [lookup_key], "limit": 1}).to_dict()["data"]
    if found:
        return found[0]
    params = {**params, "lookup_key": lookup_key}
    return client.v1.prices.create(params, _options(f"price-{lookup_key}")).to_dict()


def meter_ensure(client) -> dict:
    """The one Billing Meter that overage is reported to (summing request counts)."""
    event_name = settings.STRIPE_METER_EVENT_NAME
    for meter in client.v1.billing.meters.list({"status": "active", "limit": 100}).to_dict()["data"]:
        if meter["event_name"] == event_name:
            return meter
    params = {
        "display_name": "API requests over the quota",
        "event_name": event_name,
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "value_settings": {"event_payload_key": "value"},
    }
    return client.v1.billing.meters.create(params, _options(f"meter-{event_name}")).to_dict()


def catalog_sync_tier(tier: Tier) -> dict:
    """Create or find the tier's Product, monthly Price and overage Price.

    Returns the ids to store on the tier. Free tiers have nothing in Stripe.
    """
    if tier.price <= 0:
        return {}
    client = stripe_client()
    product = _product_ensure(client, tier)
    metadata = {"tier": tier.slug}
    flat = _price_ensure(
        client,
        flat_price_lookup_key(tier),
        {
            "product": product["id"],
            "currency": tier.currency,
            "unit_amount": _minor_units(tier.price, tier.currency),
            "recurring": {"interval": "month"},
            "metadata": metadata,
        },
    )
    ids = {"stripe_product_id": product["id"], "stripe_price_id": flat["id"], "stripe_overage_price_id": ""}
    if tier.has_overage:
        meter = meter_ensure(client)
        overage = _price_ensure(
            client,
            overage_price_lookup_key(tier),
            {
                "product": product["id"],
                "currency": tier.currency,
                "unit_amount_decimal": overage_unit_amount(tier),
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter["id"]},
                "metadata": metadata,
            },
        )
        ids["stripe_overage_price_id"] = overage["id"]
    return ids


# Customers, Checkout and the Portal --------------------------------------------


def stripe_customer_ensure(customer: Customer) -> str:
    """The customer's Stripe customer id, created once and stored."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    user = customer.user
    created = stripe_client().v1.customers.create(
        {"email": user.email, "metadata": {"customer_id": str(customer.pk)}},
        _options(f"customer-{customer.pk}"),
    )
    # Conditional: two tabs racing here must not overwrite each other's id (the
    # idempotency key makes them the same Stripe customer anyway).
    Customer.objects.filter(pk=customer.pk, stripe_customer_id="").update(stripe_customer_id=created.id)
    customer.refresh_from_db(fields=["stripe_customer_id"])
    return customer.stripe_customer_id


def stripe_customer_email_update(stripe_customer_id: str, email: str) -> dict:
    """Invoices and receipts go to `email` from now on."""
    return stripe_client().v1.customers.update(stripe_customer_id, {"email": email}).to_dict()


def checkout_session_create(customer: Customer, tier: Tier, *, success_url: str, cancel_url: str) -> dict:
    line_items = [{"price": tier.stripe_price_id, "quantity": 1}]
    if tier.stripe_overage_price_id:
        line_items.append({"price": tier.stripe_overage_price_id})  # metered: no quantity
    metadata = {"customer_id": str(customer.pk), "tier": tier.slug}
    params = {
        "mode": "subscription",
        "customer": stripe_customer_ensure(customer),
        "client_reference_id": str(customer.pk),
        "line_items": line_items,
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    return stripe_client().v1.checkout.sessions.create(params).to_dict()


def checkout_session_fetch(session_id: str) -> dict:
    return stripe_client().v1.checkout.sessions.retrieve(session_id).to_dict()


def portal_session_create(customer: Customer, *, return_url: str, flow: dict | None = None) -> dict:
    params = {"customer": stripe_customer_ensure(customer), "return_url": return_url}
    if flow:
        params["flow_data"] = flow
    return stripe_client().v1.billing_portal.sessions.create(params).to_dict()


def subscription_fetch(subscription_id: str) -> dict:
    return stripe_client().v1.subscriptions.retrieve(subscription_id).to_dict()


def subscription_cancel(subscription_id: str) -> dict:
    """End the subscription now. invoice_now bills the metered overage
    reported so far on a final invoice; the flat price already paid for the
    period is not prorated back (Stripe's default)."""
    try:
        return stripe_client().v1.subscriptions.cancel(subscription_id, {"invoice_now": True}).to_dict()
    except stripe.InvalidRequestError:
        # Already cancelled (a replay, or the customer cancelled in the
        # Portal meanwhile): Stripe refuses a second cancel; its state is the answer.
        subscription = subscription_fetch(subscription_id)
        if subscription["status"] != "canceled":
            raise
        return subscription


def subscriptions_of(stripe_customer_id: str) -> list[dict]:
    """All of a Stripe customer's subscriptions, newest first, ended ones too."""
    listed = stripe_client().v1.subscriptions.list(
        {"customer": stripe_customer_id, "status": "all", "limit": 10}
    )
    return listed.to_dict()["data"]


# Overage ----------------------------------------------------------------------


def meter_event_send(*, stripe_customer_id: str, units: int, identifier: str, timestamp: int) -> dict:
    """Report overage units. Stripe ignores a second event with the same
    identifier, so re-sending an hour cannot bill it twice."""
    params = {
        "event_name": settings.STRIPE_METER_EVENT_NAME,
        "identifier": identifier,
        "timestamp": timestamp,
        "payload": {"stripe_customer_id": stripe_customer_id, "value": str(units)},
    }
    return stripe_client().v1.billing.meter_events.create(params, _options(identifier)).to_dict()


def overage_meter_id() -> str | None:
    """The id of the Billing Meter overage is reported to, or None before sync_tiers made it."""
    meters = stripe_client().v1.billing.meters.list({"status": "active", "limit": 100}).to_dict()["data"]
    event_name = settings.STRIPE_METER_EVENT_NAME
    return next((meter["id"] for meter in meters if meter["event_name"] == event_name), None)


def meter_usage_total(*, meter_id: str, stripe_customer_id: str, start: int, end: int) -> int:
    """Units Stripe's meter recorded for the customer with timestamps in
    [start, end) (Unix seconds on whole minutes, as Stripe requires). Without
    a value_grouping_window Stripe sums the whole range in one summary."""
    params = {"customer": stripe_customer_id, "start_time": start, "end_time": end}
    summaries = stripe_client().v1.billing.meters.event_summaries.list(meter_id, params).to_dict()["data"]
    return round(sum(summary["aggregated_value"] for summary in summaries))
