"""Keys and customers with usage are revoked, never deleted from under it.

Usage in PostgreSQL is protected by UsageRecord's foreign keys (PROTECT to
the customer, RESTRICT to the key). Usage still pending in Redis has no row
yet, and the flush drops counts whose key or customer is gone: so deleting a
key or customer with pending usage is refused here, on pre_delete (connected
by metering.apps), for the ORM and admin alike. After the flush the foreign
keys refuse instead.
"""

from django.db.models import ProtectedError

from apikeys.models import APIKey

from .selectors import pending_units


def refuse_deleting_pending_usage(sender, instance, **kwargs) -> None:
    """pre_delete of APIKey and Customer: ProtectedError while usage is pending."""
    if isinstance(instance, APIKey):
        pending = pending_units(customer_id=instance.customer_id, key_id=instance.pk)
    else:
        pending = pending_units(customer_id=instance.pk)
    if pending:
        raise ProtectedError(
            f"{instance} has {sum(pending.values())} billable units not yet flushed: "
            "revoke keys instead of deleting them, or delete after the next usage flush.",
            {instance},
        )
