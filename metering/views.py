from datetime import UTC, datetime

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import days_between, usage_in_period
from .serializers import UsageSerializer
from .throttling import limits_for


class UsageView(APIView):
    """The calling key's customer: quota, usage this period and per day."""

    billable = False  # limited by burst like any call, but never counted

    @extend_schema(responses=UsageSerializer)
    def get(self, request):
        context = request.auth
        limits = limits_for(context, datetime.now(UTC))
        usage = usage_in_period(
            customer_id=context.customer_id, start=limits.period_start, end=limits.period_end
        )
        today = datetime.now(UTC).date()
        daily = [
            {"date": day, "used": usage.by_day.get(day, 0)}
            for day in days_between(limits.period_start, limits.period_end)
            if day <= today
        ]
        body = {
            "tier": context.tier_slug,
            "quota": limits.quota,
            "quota_period": context.quota_period,
            "period_start": limits.period_start,
            "period_end": limits.period_end,
            "used": usage.total,
            "remaining": max(0, limits.quota - usage.total),
            "burst": limits.burst,
            "daily": daily,
        }
        return Response(UsageSerializer(body).data)
