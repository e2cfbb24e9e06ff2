import time

from django.conf import settings
from rest_framework import status
from rest_framework.permissions import BasePermission

from core.errors import AppError


class PaymentRequired(AppError):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    code = "payment_required"
    detail = "API access is suspended until the account's payment is settled."


class BillingInGoodStanding(BasePermission):
    """402 for a customer whose access is suspended for non-payment."""

    def has_permission(self, request, view):
        context = request.auth
        if context is not None and context.is_suspended(time.time()):
            billing_url = request.build_absolute_uri(settings.BILLING_PAGE_PATH)
            raise PaymentRequired(
                f"API access is suspended until the account's payment is settled: {billing_url}",
                extra={"billing_url": billing_url},
            )
        return True
