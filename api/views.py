"""The sample product API: what the tiers sell.

Written the way an operator would write their own endpoints: plain DRF views
that know nothing of keys, limits or billing; the default settings add those.
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, available_timezones

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import AppError

from . import serializers
from .primes import primes_below

MAX_PARAMETER_LENGTH = 1000


class ParameterTooLong(AppError):
    code = "parameter_too_long"


class EchoView(APIView):
    """Returns the query parameters it got. No work of its own: the cost floor."""

    @extend_schema(
        parameters=[OpenApiParameter("msg", str, description="Any parameter is echoed back.")],
        responses=serializers.EchoSerializer,
    )
    def get(self, request):
        query = {}
        for name, values in request.query_params.lists():
            for text in (name, *values):
                if len(text) > MAX_PARAMETER_LENGTH:
                    raise ParameterTooLong(
                        f"Query parameter '{name[:50]}' is longer than {MAX_PARAMETER_LENGTH} characters."
                    )
            query[name] = values[0] if len(values) == 1 else values
        return Response({"query": query})


class PrimesView(APIView):
    """Counts the primes below a bound with a sieve: CPU-heavy on purpose."""

    @extend_schema(parameters=[serializers.PrimesQuerySerializer], responses=serializers.PrimesSerializer)
    def get(self, request):
        params = serializers.PrimesQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        below = params.validated_data["below"]
        primes = primes_below(below)
        return Response(
            {
                "below": below,
                "count": len(primes),
                "largest": primes[-1] if primes else None,
                "last": primes[-10:],
            }
        )


class TimezonesView(APIView):
    """Every IANA time zone with its current offset: a large response on purpose."""

    @extend_schema(
        parameters=[serializers.TimezonesQuerySerializer], responses=serializers.TimezoneListSerializer
    )
    def get(self, request):
        params = serializers.TimezonesQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        region = params.validated_data.get("region", "")
        now = datetime.now(UTC)
        names = sorted(name for name in available_timezones() if name.startswith(region))
        zones = [_describe_zone(name, now) for name in names]
        return Response({"count": len(zones), "at": now.isoformat(), "timezones": zones})


def _describe_zone(name: str, now: datetime) -> dict:
    local = now.astimezone(ZoneInfo(name))
    offset_seconds = int(local.utcoffset().total_seconds())
    hours, minutes = divmod(abs(offset_seconds) // 60, 60)
    return {
        "name": name,
        "abbreviation": local.tzname(),
        "utc_offset": f"{'-' if offset_seconds < 0 else '+'}{hours:02d}:{minutes:02d}",
        "utc_offset_seconds": offset_seconds,
        "dst": bool(local.dst()),
        "local_time": local.isoformat(),
    }
