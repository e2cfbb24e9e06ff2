from datetime import UTC, datetime

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from plans.models import Customer
from plans.pricing import projected_bill

from .selectors import usage_summary
from .serializers import UsageSerializer
from .throttling import limits_for


class UsageView(APIView):
    """The calling key's customer: quota, usage this period and per day."""

    billable = False  # limited by burst like any call, but never counted

    @extend_schema(responses=UsageSerializer)
    def get(self, request):
        context = request.auth
        now = datetime.now(UTC)
        limits = limits_for(context, now)
        summary = usage_summary(
            customer_id=context.customer_id,
            quota=limits.quota,
            period_start=limits.period_start,
            period_end=limits.period_end,
            now=now,
        )
        body = {
            "tier": context.tier_slug,
            "quota": summary.quota,
            "quota_period": context.quota_period,
            "period_start": summary.period_start,
            "period_end": summary.period_end,
            "used": summary.used,
            "remaining": summary.remaining,
            "burst": limits.burst,
            "daily": [{"date": day, "used": used} for day, used in summary.daily],
            "bill": projected_bill(
                Customer.objects.select_related("tier").get(pk=context.customer_id),
                used=summary.used,
                period_start=summary.period_start,
                period_end=summary.period_end,
                now=now,
            ).__dict__,
        }
        return Response(UsageSerializer(body).data)
