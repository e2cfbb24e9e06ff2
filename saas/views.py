from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from core.errors import DatabaseUnavailable, error_body
from plans.selectors import tiers_public

from .health import run_checks


@require_safe
def landing(request):
    return render(request, "landing.html", {"tiers": tiers_public()})


@require_safe
def pricing(request):
    # Read on every request, not cached: a tier edited in admin shows at once.
    return render(request, "pricing.html", {"tiers": tiers_public()})


@never_cache
@require_safe
def healthz(request):
    """200 when every configured dependency answers, else 503. Never metered."""
    healthy, checks = run_checks()
    response = JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
    response._has_been_logged = True  # probed every few seconds: an outage is logged once (core.breaker)
    return response


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def page_not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body("not_found", f"No endpoint at {request.path}."), status=404)
    return render(request, "404.html", status=404)


def method_not_allowed(request, *, allowed: str):
    """405 with the Allow header of the view that refused the method."""
    detail = f'Method "{request.method}" not allowed.'
    if _wants_json(request):
        response = JsonResponse(error_body("method_not_allowed", detail), status=405)
    else:
        response = render(request, "405.html", {"allowed": allowed}, status=405)
    response["Allow"] = allowed
    return response


def server_error(request):
    if _wants_json(request):
        return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)
    return render(request, "500.html", status=500)


def database_unavailable(request):
    """503 with Retry-After. The page is rendered without the request: its
    context processors would read the session and the user from the database."""
    if _wants_json(request):
        response = JsonResponse(error_body(DatabaseUnavailable.code, DatabaseUnavailable.detail), status=503)
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)
    response._has_been_logged = True  # no django.request error per refused request
    return response
