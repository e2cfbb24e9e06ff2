"""Views an operator might add, to test the throttle's per-view settings."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView


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


urlpatterns = [
    path("api/v1/report", ReportView.as_view()),
    path("api/v1/status", StatusView.as_view()),
    path("api/v1/", include("api.urls")),
]
