"""The customer dashboard: plan, usage and API keys of the signed-in user.

Every key is looked up within the signed-in user's customer, so another
customer's key id is a 404, never a 403 that would confirm it exists.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from apikeys.models import KeyStatus
from apikeys.selectors import api_keys_of_customer
from apikeys.services import CreatedKey, KeyNotActive, api_key_create, api_key_revoke, api_key_rotate
from plans.models import Customer, SubscriptionStatus
from plans.selectors import tiers_public
from plans.services import customer_ensure

from .forms import APIKeyCreateForm
from .selectors import dashboard_usage, email_verified

VERIFY_FIRST = "Confirm your email address before creating API keys: follow the link we sent you."


def _render_dashboard(request, customer: Customer, *, key_form=None, status=200):
    now = timezone.now()
    keys = list(api_keys_of_customer(customer_id=customer.pk))
    context = {
        "customer": customer,
        "tier": customer.tier,
        "past_due": customer.subscription_status == SubscriptionStatus.PAST_DUE,
        "suspended_from": customer.suspended_from(),
        "now": now,
        "usage": dashboard_usage(customer=customer, now=now),
        "keys": keys,
        "example_key": next((key for key in keys if key.status(now) == KeyStatus.ACTIVE), None),
        "email_verified": email_verified(request.user),
        "key_form": key_form or APIKeyCreateForm(),
        "tiers": tiers_public(),
    }
    return render(request, "dashboard/index.html", context, status=status)


def _show_key_once(request, created: CreatedKey, *, replaced=None):
    """The raw key, on this response only: it is stored nowhere, and the
    response must not be cached either."""
    response = render(request, "dashboard/key_created.html", {"created": created, "replaced": replaced})
    add_never_cache_headers(response)
    return response


@never_cache
@login_required
@require_safe
def dashboard(request):
    return _render_dashboard(request, customer_ensure(user=request.user))


@login_required
@require_POST
def key_create(request):
    customer = customer_ensure(user=request.user)
    # Enforced here, not only by hiding the form: a verified address is what
    # ties a key, and its usage, to someone who can be reached.
    if not email_verified(request.user):
        messages.error(request, VERIFY_FIRST)
        return redirect("dashboard:index")
    form = APIKeyCreateForm(request.POST)
    if not form.is_valid():
        return _render_dashboard(request, customer, key_form=form, status=400)
    return _show_key_once(request, api_key_create(customer=customer, name=form.cleaned_data["name"]))


@login_required
@require_POST
def key_revoke(request, pk: int):
    customer = customer_ensure(user=request.user)
    api_key = get_object_or_404(api_keys_of_customer(customer_id=customer.pk), pk=pk)
    if api_key_revoke(api_key=api_key):
        messages.success(request, f"Key “{api_key.name}” ({api_key.prefix}…) is revoked: it no longer works.")
    else:
        messages.info(request, f"Key “{api_key.name}” ({api_key.prefix}…) was already revoked.")
    return redirect("dashboard:index")


@login_required
@require_POST
def key_rotate(request, pk: int):
    customer = customer_ensure(user=request.user)
    api_key = get_object_or_404(api_keys_of_customer(customer_id=customer.pk), pk=pk)
    if not email_verified(request.user):
        messages.error(request, VERIFY_FIRST)
        return redirect("dashboard:index")
    try:
        created = api_key_rotate(api_key=api_key)
    except KeyNotActive as error:
        messages.error(request, error.detail)
        return redirect("dashboard:index")
    return _show_key_once(request, created, replaced=api_key)
