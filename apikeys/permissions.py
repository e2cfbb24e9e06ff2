from rest_framework.permissions import BasePermission

from .exceptions import InsufficientScope, MissingKey

DEFAULT_REQUIRED_SCOPE = "api"


class HasAPIKeyScope(BasePermission):
    """Requires an API key carrying the view's `required_scope` (default "api")."""

    def has_permission(self, request, view):
        if request.auth is None:
            raise MissingKey()
        required = getattr(view, "required_scope", DEFAULT_REQUIRED_SCOPE)
        if required not in request.auth.scopes:
            raise InsufficientScope()
        return True
