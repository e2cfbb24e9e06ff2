"""The API docs pages, Swagger UI and Redoc, served from this site alone.

The scripts come from drf-spectacular-sidecar (pinned in requirements.txt) as
static files. The pages add a Content-Security-Policy so that the browser
fetches nothing from another site, whatever a bundled script asks for: Redoc's
sidebar asks a CDN for its logo, which the policy blocks (the image is then
left out). Swagger UI's start script is its own URL (the split view) rather
than an inline script, so the policy allows no inline script either.
"""

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

# Styles may be inline: Redoc and Swagger UI style their elements from script.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'self'",
        "form-action 'self'",
    ]
)


class LocalOnly:
    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response


class SwaggerView(LocalOnly, SpectacularSwaggerSplitView):
    pass


class RedocView(LocalOnly, SpectacularRedocView):
    pass
