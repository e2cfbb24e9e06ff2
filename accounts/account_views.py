"""The account page: the signed-in person's email, password and the
deletion of their account.

Password and email changes are allauth's own views (/accounts/password/change/
and /accounts/email/, in the site's layout): allauth checks the current
password, sends the confirmation link and makes a new address the login only
once it is confirmed (ACCOUNT_CHANGE_EMAIL). This module adds the page that
gathers them and the deletion, which allauth does not offer.
"""

from allauth.account.forms import ReauthenticateForm
from allauth.account.models import EmailAddress
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from apikeys.models import APIKey
from plans.models import ENDED
from plans.services import customer_ensure

from .services import account_delete

DELETED_FLAG = "account_deleted"  # in the new, anonymous session: the confirmation page shows once


@never_cache
@login_required
@require_safe
def account(request):
    addresses = EmailAddress.objects.filter(user=request.user)
    return render(
        request,
        "account/index.html",
        {
            "primary_email": next((a for a in addresses if a.primary), None),
            "pending_email": next((a for a in addresses if not a.primary and not a.verified), None),
        },
    )


def _deletion_context(request, form) -> dict:
    customer = customer_ensure(user=request.user)
    return {
        "form": form,
        "customer": customer,
        "active_keys": APIKey.objects.filter(customer=customer, revoked_at__isnull=True).count(),
        "has_subscription": bool(customer.stripe_subscription_id)
        and customer.subscription_status not in ENDED,
    }


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def account_delete_view(request):
    """A confirmation with the password re-entered (allauth's reauthentication
    form: wrong passwords count towards the login lockout); then the deletion,
    the logout, and the confirmation page."""
    if request.method != "POST":
        form = ReauthenticateForm(user=request.user)
        return render(request, "account/delete.html", _deletion_context(request, form))
    form = ReauthenticateForm(request.POST, user=request.user)
    if not form.is_valid():
        return render(request, "account/delete.html", _deletion_context(request, form), status=400)
    account_delete(user=request.user)
    logout(request)
    request.session[DELETED_FLAG] = True
    return redirect("dashboard:account_deleted")


@never_cache
@require_safe
def account_deleted(request):
    if not request.session.pop(DELETED_FLAG, False):
        return redirect("landing")
    return render(request, "account/deleted.html")
