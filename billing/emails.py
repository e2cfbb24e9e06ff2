"""Emails to customers about their billing."""

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from plans.models import Customer


def past_due_warning_send(customer_pk: int) -> bool:
    """The one email of a past-due episode: the payment failed, access ends
    after the grace period unless it is settled. False when there is nothing
    to send (settled since, already warned, no address)."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().select_related("user").filter(pk=customer_pk).first()
        if customer is None or customer.past_due_since is None or not customer.user.email:
            return False
        if customer.past_due_warned_at and customer.past_due_warned_at >= customer.past_due_since:
            return False
        suspended_from = customer.suspended_from()
        send_mail(
            subject="Your payment failed: please update your payment method",
            message=(
                "Stripe could not collect your last payment. Your API access continues until "
                f"{suspended_from:%Y-%m-%d %H:%M} UTC; after that the API answers 402 until the "
                f"payment is settled. Manage billing from your dashboard: {settings.BILLING_PAGE_PATH}"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[customer.user.email],
        )
        customer.past_due_warned_at = timezone.now()
        customer.save(update_fields=["past_due_warned_at", "updated_at"])
    return True
