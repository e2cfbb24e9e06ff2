"""The admin site, with the operator dashboard at /admin/dashboard/.

A subclass of Django's AdminSite (installed by saas.apps.OperatorAdminConfig)
so the dashboard gets the admin's chrome and its staff-only login guard, and
every `@admin.register` keeps working on `admin.site`.
"""

from django.contrib import admin
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


class OperatorAdminSite(admin.AdminSite):
    index_template = "admin/operator_index.html"

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
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/operator_dashboard.html", context)
