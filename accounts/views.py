"""The customer dashboard: plan, usage and API keys of the signed-in user.

Every key is looked up within the signed-in user's customer, so another
customer's key id is a 404, never a 403 that would confirm it exists.

Creating and rotating a key follow post/redirect/get: the POST keeps the raw
key in the session and redirects to `key_created`, which takes it out and
shows it once; reloading that page shows nothing and creates nothing.
"""

import csv

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from apikeys.models import KeyStatus
from apikeys.selectors import api_keys_of_customer
from apikeys.services import (
    CreatedKey,
    InvalidKeyName,
    KeyNotActive,
    TooManyKeys,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
)
from plans.models import Customer, SubscriptionStatus
from plans.selectors import tiers_public
from plans.services import customer_ensure

from .forms import APIKeyCreateForm, APIKeyRotateForm
from .selectors import dashboard_usage, email_verified, keys_usage

VERIFY_FIRST = "Confirm your email address before creating API keys: follow the link we sent you."
SHOWN_ONCE = (
    "Your new key was shown once, right after it was made, and cannot be shown again "
    "(only its hash is kept). Lost it? Rotate the key or create another."
)
# The session entry holding a new raw key between the POST and its redirect.
NEW_KEY_SESSION = "dashboard_new_api_key"
# Revoked and expired keys listed under the fold; older ones are only counted.
INACTIVE_KEYS_SHOWN = 50


def _keys_page():
    return redirect(reverse("dashboard:index") + "#keys")


def _render_dashboard(request, customer: Customer, *, key_form=None, status=200):
    now = timezone.now()
    keys = list(api_keys_of_customer(customer_id=customer.pk))
    active_keys = [key for key in keys if key.status(now) == KeyStatus.ACTIVE]
    inactive_keys = [key for key in keys if key.status(now) != KeyStatus.ACTIVE]
    context = {
        "customer": customer,
        "tier": customer.tier,
        "past_due": customer.subscription_status == SubscriptionStatus.PAST_DUE,
        "suspended_from": customer.suspended_from(),
        "now": now,
        "usage": dashboard_usage(customer=customer, now=now),
        "keys": keys,
        "active_keys": active_keys,
        "inactive_keys": inactive_keys[:INACTIVE_KEYS_SHOWN],
        "inactive_keys_count": len(inactive_keys),
        "key_limit": settings.API_KEYS_PER_CUSTOMER,
        "keys_usage": keys_usage(customer=customer, now=now),
        "example_key": active_keys[0] if active_keys else None,
        "email_verified": email_verified(request.user),
        "key_form": key_form or APIKeyCreateForm(),
        "rotate_form": APIKeyRotateForm(),
        "tiers": tiers_public(),
    }
    return render(request, "dashboard/index.html", context, status=status)


def _show_key_once(request, created: CreatedKey, *, replaced=None):
    request.session[NEW_KEY_SESSION] = {
        "key_id": created.api_key.pk,
        "raw_key": created.raw_key,
        "replaced_id": replaced.pk if replaced else None,
    }
    return redirect("dashboard:key_created")


@never_cache
@login_required
@require_safe
def dashboard(request):
    # A new key not picked up by its redirect is not left in the session.
    request.session.pop(NEW_KEY_SESSION, None)
    return _render_dashboard(request, customer_ensure(user=request.user))


@never_cache
@login_required
@require_safe
def key_created(request):
    """The new key, taken out of the session: shown on this response only,
    which no cache may keep either."""
    shown = request.session.pop(NEW_KEY_SESSION, None)
    customer = customer_ensure(user=request.user)
    keys = api_keys_of_customer(customer_id=customer.pk)
    api_key = keys.filter(pk=shown["key_id"]).first() if shown else None
    if api_key is None:
        messages.info(request, SHOWN_ONCE)
        return _keys_page()
    replaced = keys.filter(pk=shown["replaced_id"]).first() if shown["replaced_id"] else None
    context = {"created": CreatedKey(api_key=api_key, raw_key=shown["raw_key"]), "replaced": replaced}
    return render(request, "dashboard/key_created.html", context)


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
    if form.is_valid():
        now = timezone.now()
        expires_after = form.expires_after()
        try:
            created = api_key_create(
                customer=customer,
                name=form.cleaned_data["name"],
                expires_at=now + expires_after if expires_after else None,
                scopes=form.cleaned_data["scopes"],
                now=now,
            )
        except (TooManyKeys, InvalidKeyName) as error:
            form.add_error(None, error.detail)
        else:
            return _show_key_once(request, created)
    return _render_dashboard(request, customer, key_form=form, status=400)


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
    form = APIKeyRotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose how long the old key keeps working from the list.")
        return _keys_page()
    try:
        created = api_key_rotate(api_key=api_key, overlap=form.overlap_duration(), now=timezone.now())
    except (KeyNotActive, TooManyKeys) as error:
        messages.error(request, error.detail)
        return _keys_page()
    return _show_key_once(request, created, replaced=api_key)


def _csv_cell(text: str) -> str:
    """A spreadsheet runs a cell starting with = + - @ as a formula: a key
    name is the customer's own text, so it is kept as text."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


@never_cache
@login_required
@require_safe
def key_usage_csv(request):
    """Billable requests by key and endpoint this quota period, as CSV."""
    customer = customer_ensure(user=request.user)
    usage = keys_usage(customer=customer, now=timezone.now())
    filename = f"api-key-usage-{usage.period_start:%Y-%m-%d}.csv"
    response = HttpResponse(
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    writer = csv.writer(response)
    writer.writerow(["key_name", "key_prefix", "endpoint", "requests", "period_start", "period_end"])
    start, end = usage.period_start.isoformat(), usage.period_end.isoformat()
    for row in usage.rows:
        writer.writerow(
            [_csv_cell(row.api_key.name), row.api_key.prefix, row.endpoint, row.requests, start, end]
        )
    return response
