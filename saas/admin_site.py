"""The admin site, with the operator dashboard at /admin/dashboard/.

A subclass of Django's AdminSite (installed by saas.apps.OperatorAdminConfig)
so the dashboard gets the admin's chrome and its staff-only login guard, and
every `@admin.register` keeps working on `admin.site`. Its login is throttled
by allauth's rate limits as the account login is, in the same counters.
"""

from allauth.account.adapter import get_adapter
from allauth.core import ratelimit
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.template.response import TemplateResponse
from django.urls import path
from django.views.decorators.http import require_safe

from billing.models import StripeEvent
from metering.reports import MARGIN_FLOOR

from .dashboard import (
    DEFAULT_WINDOW_DAYS,
    EVENTS_PERMISSION,
    REVENUE_PERMISSION,
    WINDOW_DAYS,
    operator_dashboard,
)


def _window_days(value: str | None) -> int:
    """The ?days= choice; anything but an offered window falls back to the default."""
    return int(value) if value in {str(days) for days in WINDOW_DAYS} else DEFAULT_WINDOW_DAYS


def _usage_flush_seconds() -> float | None:
    """How often usage moves from Redis to the ledger the dashboard reads; None
    on the embedded default (no Redis), whose limiter writes the ledger itself."""
    if not settings.REDIS_URL:
        return None
    return settings.CELERY_BEAT_SCHEDULE["flush-usage"]["schedule"]


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """Django's admin login, authenticated through allauth's adapter: failures
    count in ACCOUNT_RATE_LIMITS["login_failed"] (per IP, and per username,
    which is the email for every user signed up here) and the lockout refuses
    as it does on /accounts/login/, saying for how long."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            adapter = get_adapter(self.request)
            self.user_cache = adapter.authenticate(self.request, username=username, password=password)
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class OperatorAdminSite(admin.AdminSite):
    index_template = "admin/operator_index.html"
    login_form = ThrottledAdminLoginForm

    def login(self, request, extra_context=None):
        # Every login POST, right or wrong, counts in allauth's "login" rate
        # (per IP), shared with /accounts/login/: over it, a 429 page.
        if request.method == "POST" and (refused := ratelimit.consume_or_429(request, action="login")):
            return refused
        return super().login(request, extra_context)

    def get_urls(self):
        # admin_view: staff only, anyone else is sent to the admin login; never cached.
        view = self.admin_view(require_safe(self.dashboard_view))
        return [path("dashboard/", view, name="dashboard"), *super().get_urls()]

    def dashboard_view(self, request):
        """Any staff user sees usage and refusals; revenue and customers' emails
        need REVENUE_PERMISSION, the listed events EVENTS_PERMISSION (a
        superuser has both): a reduced page rather than a 403, so support
        staff keep the figures their work needs."""
        days = _window_days(request.GET.get("days"))
        dashboard = operator_dashboard(
            days=days,
            revenue=request.user.has_perm(REVENUE_PERMISSION),
            events=request.user.has_perm(EVENTS_PERMISSION),
        )
        context = {
            **self.each_context(request),
            "title": "Operator dashboard",
            "dashboard": dashboard,
            "window_days": WINDOW_DAYS,
            "margin_floor": MARGIN_FLOOR,
            "events_admin": self.is_registered(StripeEvent),
            "usage_flush_seconds": _usage_flush_seconds(),
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/operator_dashboard.html", context)
