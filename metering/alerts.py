"""Quota alerts: one email per customer per threshold per period."""

import logging
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from plans.models import Customer

from .models import QuotaAlert

logger = logging.getLogger(__name__)

THRESHOLDS = (80, 100)  # percent of the quota


def thresholds_reached(*, quota: int, used: int) -> list[int]:
    return [t for t in THRESHOLDS if t * quota <= used * 100]


def quota_alert_send(*, customer_id: int, period_start: datetime, threshold: int) -> bool:
    """Send the alert unless it was already sent for this period. False when it was.

    The row and the email succeed or fail together: if sending raises, the
    row is rolled back and the Celery retry sends it then.
    """
    customer = Customer.objects.select_related("user", "tier").filter(pk=customer_id).first()
    if customer is None or not customer.user.email:
        return False
    try:
        with transaction.atomic():
            QuotaAlert.objects.create(customer=customer, period_start=period_start, threshold=threshold)
            send_mail(
                subject=_subject(threshold),
                message=_body(customer, threshold),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[customer.user.email],
            )
    except IntegrityError:
        return False
    logger.info("quota alert %s%% sent to customer %s", threshold, customer_id)
    return True


def _subject(threshold: int) -> str:
    if threshold >= 100:
        return "You have used all of your API quota"
    return f"You have used {threshold}% of your API quota"


def _body(customer: Customer, threshold: int) -> str:
    tier = customer.tier
    after = (
        "Further requests are billed as overage."
        if tier.has_overage
        else "Further requests are refused with 429 until the period ends, or until you upgrade."
    )
    return (
        f"Your {tier.name} plan includes {customer.quota} requests {tier.get_quota_period_display()}, "
        f"and you have now used {threshold}% of them.\n\n"
        f"{after if threshold >= 100 else 'You will get one more email if you reach 100%.'}\n"
    )
