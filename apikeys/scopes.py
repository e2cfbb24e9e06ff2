"""The scopes a customer can give a key on the dashboard.

A view names the scope it needs (`required_scope`, apikeys.permissions); a key
reaches it only if it carries that scope. Every scope a view of this project
requires is listed here, with what it opens, so a customer picks among real
ones. Operators may give a key other scopes in admin.
"""

from .permissions import DEFAULT_REQUIRED_SCOPE

SCOPES: dict[str, str] = {
    DEFAULT_REQUIRED_SCOPE: "Call the API: every endpoint, usage included",
}
