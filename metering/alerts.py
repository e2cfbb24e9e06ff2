"""Quota alerts: one email per customer per threshold per period."""

import logging
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string

from plans.models import Customer

from .models import QuotaAlert
from .selectors import tier_above

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
    """With the product's name first (settings.PRODUCT_NAME), as every email of the site."""
    said = (
        "You have used all of your API quota"
        if threshold >= 100
        else f"You have used {threshold}% of your API quota"
    )
    return f"[{settings.PRODUCT_NAME}] {said}"


def _body(customer: Customer, threshold: int) -> str:
    """metering/emails/quota_alert.txt; links are absolute (settings.SITE_URL):
    the email is sent by a task, with no request to take the host from."""
    tier = customer.tier
    return render_to_string(
        "metering/emails/quota_alert.txt",
        {
            "customer": customer,
            "tier": tier,
            "threshold": threshold,
            "upgrade": tier_above(tier_slug=tier.slug, quota=customer.quota),
            "dashboard_url": settings.SITE_URL + settings.BILLING_PAGE_PATH,
            "product_name": settings.PRODUCT_NAME,
        },
    )
