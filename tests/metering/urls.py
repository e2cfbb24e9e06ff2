"""Views an operator might add, to test the throttle's and metering's per-view settings."""

import time

from django.urls import include, path
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from metering.cost import third_party_call
from metering.views import UsageView


class ReportView(APIView):
    """An expensive endpoint: one call uses three quota units."""

    quota_cost = 3

    def get(self, request):
        return Response({"report": "ready"})


class StatusView(APIView):
    """An operational endpoint: authenticated, but neither limited nor counted."""

    metered = False

    def get(self, request):
        return Response({"status": "ok"})


class MissingView(APIView):
    """Admitted by the limiter, then answers 404 for the thing asked for."""

    def get(self, request):
        raise NotFound("No such widget.")


class MissingWhileRedisStallsView(APIView):
    """Admitted, then answers 404 while something (a test's `during_view`)
    makes Redis stall, so the settle that unbills the 404 cannot run now."""

    during_view = staticmethod(lambda: None)

    def get(self, request):
        type(self).during_view()
        raise NotFound("No such widget.")


class BrokenView(APIView):
    """Admitted, then answers 500 without raising."""

    def get(self, request):
        return Response({"error": "server_error"}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


class CrashingView(APIView):
    """Admitted, then raises: Django turns it into a 500."""

    def get(self, request):
        raise RuntimeError("boom")


class CreateView(APIView):
    """A 201 is a success like a 200."""

    def post(self, request):
        return Response({"created": True}, status=status.HTTP_201_CREATED)


class GeocodeView(APIView):
    """Calls a third-party service twice per request, as endpoint code would."""

    def get(self, request):
        for _ in range(2):
            with third_party_call("x"):
                pass
        return Response({"calls": 2})


class SleepyView(APIView):
    """Waits 0.2 s without using the CPU, like a view blocked on I/O."""

    def get(self, request):
        time.sleep(0.2)
        return Response({"slept": 0.2})


urlpatterns = [
    path("api/v1/report", ReportView.as_view()),
    path("api/v1/status", StatusView.as_view()),
    path("api/v1/missing", MissingView.as_view()),
    path(
        "api/v1/missing-while-redis-stalls",
        MissingWhileRedisStallsView.as_view(),
        name="missing-while-redis-stalls",
    ),
    path("api/v1/broken", BrokenView.as_view()),
    path("api/v1/crashing", CrashingView.as_view()),
    path("api/v1/widgets", CreateView.as_view()),
    path("api/v1/usage", UsageView.as_view(), name="usage"),
    path("api/v1/geocode", GeocodeView.as_view(), name="geocode"),
    path("api/v1/sleepy", SleepyView.as_view(), name="sleepy"),
    path("api/v1/", include("api.urls")),
]
