"""The sample product API: what the tiers sell.

Written the way an operator would write their own endpoints: plain DRF views
that know nothing of keys, limits or billing; the default settings add those.
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, available_timezones

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import MethodNotAllowed, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import AppError

from . import serializers
from .primes import primes_below

MAX_PARAMETER_LENGTH = 1000


class ParameterTooLong(AppError):
    code = "parameter_too_long"
    detail = f"A query parameter is longer than {MAX_PARAMETER_LENGTH} characters."


PRODUCT_TAG = "Sample API"


def validated_query(serializer_class, request) -> dict:
    """The query parameters validated by `serializer_class`, or a 400.

    Read as a plain dict rather than DRF's form input, which takes an empty
    value (`?region=`) for an absent one: the schema says a value is at least
    one character, and a client sending an empty one should hear that it is
    wrong rather than get the default. A repeated parameter counts by its last
    value, as with the QueryDict. A parameter the operation does not know is
    refused, as Stripe does: a typo (`?regoin=`) would otherwise go unnoticed.
    """
    params = serializer_class(data=request.query_params.dict())
    unknown = sorted(set(request.query_params) - set(params.fields))
    if unknown:
        raise ValidationError({name[:50]: ["Unknown query parameter."] for name in unknown})
    params.is_valid(raise_exception=True)
    return params.validated_data


class ProductView(APIView):
    """A method the view does not answer is a 405 at once, before the key is
    checked or an Idempotency-Key claimed: DRF would meter it first, and a
    TRACE under a key a GET used would get that key's 422."""

    def initial(self, request, *args, **kwargs):
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)


class EchoView(ProductView):
    """Returns the query parameters it got. No work of its own: the cost floor."""

    raises = (ParameterTooLong,)

    @extend_schema(
        operation_id="echo",
        summary="Echo the query parameters",
        description=(
            "Answers with the query parameters it received, repeated ones as lists. "
            f"A name or value is at most {MAX_PARAMETER_LENGTH} characters. "
            "The cheapest call: use it to check a key and read your limits from the headers."
        ),
        tags=[PRODUCT_TAG],
        parameters=[
            OpenApiParameter(
                "parameters",
                # Any value: a query string carries only text, and a repeated
                # parameter comes back as a list, which no schema of a
                # form-style object can tell apart from other types.
                {"type": "object", "additionalProperties": True},
                style="form",
                explode=True,
                description=(
                    "Any query parameters, e.g. `?msg=hello`: each is echoed back. "
                    f"A name or value over {MAX_PARAMETER_LENGTH} characters is a 400 `parameter_too_long`."
                ),
            )
        ],
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


class PrimesView(ProductView):
    """Counts the primes below a bound with a sieve: CPU-heavy on purpose."""

    raises = (ValidationError,)

    @extend_schema(
        operation_id="primes",
        summary="Count the primes below a bound",
        description="Counts the prime numbers below `below` and lists the ten largest.",
        tags=[PRODUCT_TAG],
        parameters=[serializers.PrimesQuerySerializer],
        responses=serializers.PrimesSerializer,
    )
    def get(self, request):
        below = validated_query(serializers.PrimesQuerySerializer, request)["below"]
        primes = primes_below(below)
        return Response(
            {
                "below": below,
                "count": len(primes),
                "largest": primes[-1] if primes else None,
                "last": primes[-10:],
            }
        )


class TimezonesView(ProductView):
    """Every IANA time zone with its current offset: a large response on purpose."""

    raises = (ValidationError,)

    @extend_schema(
        operation_id="timezones",
        summary="List the time zones with their current offsets",
        description=(
            "Every IANA time zone (or those whose name starts with `region`) with its "
            "abbreviation, UTC offset, daylight saving time and local time now."
        ),
        tags=[PRODUCT_TAG],
        parameters=[serializers.TimezonesQuerySerializer],
        responses=serializers.TimezoneListSerializer,
    )
    def get(self, request):
        region = validated_query(serializers.TimezonesQuerySerializer, request).get("region", "")
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
