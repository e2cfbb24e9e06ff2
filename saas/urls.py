from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from metering.views import UsageView

from . import views

handler404 = "saas.views.page_not_found"
handler500 = "saas.views.server_error"
# allauth's rate limits (sign-up, login) answer with the ROOT_URLCONF's handler429.
handler429 = "accounts.too_many.too_many_requests"

urlpatterns = [
    path("", views.landing, name="landing"),
    path("pricing/", views.pricing, name="pricing"),
    path("accounts/", include("allauth.urls")),
    path("dashboard/", include("accounts.urls")),
    path("billing/", include("billing.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/usage", UsageView.as_view(), name="usage"),
    path("api/v1/", include("api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI (/api/docs/) and Redoc (/api/redoc/), served from this site alone.
    path("api/", include("api.docs_urls")),
    # Unknown API paths answer JSON even with DEBUG on (Django's debug 404 is HTML).
    re_path(r"^api/", views.page_not_found),
]
