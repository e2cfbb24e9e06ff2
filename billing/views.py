"""Billing pages: Checkout, the Customer Portal, the overage cap, and the
Stripe webhook endpoint.

The browser views only send the customer to Stripe and back; access changes
come from a verified webhook or a server-side fetch from Stripe, never from
the success redirect itself.

Without Stripe configured (no STRIPE_SECRET_KEY) the customer reads only that
billing is not available right now; the reason, with the setting's name, goes
to the log for the operator. A customer never reads a setting's name.
"""

import logging

import stripe
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apikeys.context import customer_key_contexts, invalidate_key_contexts
from core.errors import error_body
from plans.currencies import money_format, visitor_locale
from plans.models import ENDED, Customer, Tier
from plans.services import customer_ensure

from . import gateway
from .stripe_api import BillingUnavailable, is_configured
from .subscriptions import subscription_apply
from .webhooks import EventMalformed, SignatureInvalid, event_store, event_verify

logger = logging.getLogger(__name__)

STRIPE_DOWN_MESSAGE = "Stripe is not answering right now; nothing was changed. Please try again in a minute."
NOT_AVAILABLE_MESSAGE = (
    "Billing is not available right now: your plan stays as it is. Please try again later."
)
RETURN_UNCHECKED_MESSAGE = (
    "We could not check your payment with Stripe just now. If you paid, your plan "
    "changes as soon as Stripe confirms it; there is nothing more to do."
)


def _dashboard():
    return HttpResponseRedirect(settings.BILLING_PAGE_PATH)


def _not_available(request, reason: str) -> HttpResponseRedirect:
    """Back to the billing page saying billing is not available; `reason`,
    which may name settings, is for the operator's log only."""
    logger.warning("%s: billing is not available: %s", request.path, reason)
    messages.error(request, NOT_AVAILABLE_MESSAGE)
    return _dashboard()


def _has_live_subscription(customer: Customer) -> bool:
    return bool(customer.stripe_subscription_id) and customer.subscription_status not in ENDED


def _to_stripe(request, make_session) -> HttpResponseRedirect:
    """Redirect to the Stripe page `make_session()` creates, or back with why not."""
    try:
        session = make_session()
    except BillingUnavailable as error:
        return _not_available(request, error.detail)
    except stripe.CardError as error:
        messages.error(request, error.user_message or "The card was refused.")
    except stripe.StripeError:
        logger.warning("Stripe call from %s failed", request.path, exc_info=True)
        messages.error(request, STRIPE_DOWN_MESSAGE)
    else:
        return HttpResponseRedirect(session["url"], status=303)
    return _dashboard()


@login_required
@require_POST
def checkout(request):
    """Subscribe to a paid tier with Stripe Checkout; change or cancel an
    existing subscription in the Customer Portal."""
    if not is_configured():
        return _not_available(request, "STRIPE_SECRET_KEY is empty")
    customer = customer_ensure(user=request.user)
    tier = Tier.objects.filter(slug=request.POST.get("tier", ""), is_active=True).first()
    if tier is None:
        messages.error(request, "Choose one of the tiers on offer.")
        return _dashboard()
    if tier.pk == customer.tier_id and (tier.price <= 0 or _has_live_subscription(customer)):
        messages.info(request, f"You are already on {tier.name}.")
        return _dashboard()
    return_url = request.build_absolute_uri(settings.BILLING_PAGE_PATH)
    if _has_live_subscription(customer):
        flow_type = "subscription_cancel" if tier.price <= 0 else "subscription_update"
        flow = {"type": flow_type, flow_type: {"subscription": customer.stripe_subscription_id}}
        return _to_stripe(
            request, lambda: gateway.portal_session_create(customer, return_url=return_url, flow=flow)
        )
    if tier.price <= 0:
        messages.info(request, f"You are on {customer.tier.name}, with no subscription to cancel.")
        return _dashboard()
    if not tier.stripe_price_id:
        messages.error(request, f"{tier.name} is not on sale yet (its Stripe price is not synced).")
        return _dashboard()
    # Stripe fills in {CHECKOUT_SESSION_ID}; the return view fetches that session.
    success_url = request.build_absolute_uri(reverse("billing:checkout_return"))
    success_url += "?session_id={CHECKOUT_SESSION_ID}"
    return _to_stripe(
        request,
        lambda: gateway.checkout_session_create(
            customer, tier, success_url=success_url, cancel_url=return_url
        ),
    )


@login_required
@require_GET
def checkout_return(request):
    """Back from Checkout: ask Stripe (server side) what happened, rather than
    trusting that the browser came back to the success URL."""
    if not is_configured():
        return _not_available(request, "STRIPE_SECRET_KEY is empty; a Checkout return was not checked")
    customer = customer_ensure(user=request.user)
    session_id = request.GET.get("session_id", "")
    if not session_id.startswith("cs_"):
        messages.error(request, "That is not a Checkout session.")
        return _dashboard()
    try:
        session = gateway.checkout_session_fetch(session_id)
        belongs = (session.get("metadata") or {}).get("customer_id") == str(customer.pk)
        subscription = None
        if belongs and session.get("status") == "complete" and session.get("subscription"):
            subscription = gateway.subscription_fetch(session["subscription"])
    except (stripe.StripeError, BillingUnavailable):
        logger.warning("checkout return: could not fetch session %s", session_id, exc_info=True)
        messages.warning(request, RETURN_UNCHECKED_MESSAGE)
        return _dashboard()
    if not belongs:
        messages.error(request, "That Checkout session is not yours.")
        return _dashboard()
    if subscription is None:
        messages.info(request, "The payment is not complete yet; your plan changes once Stripe confirms it.")
        return _dashboard()
    with transaction.atomic():
        locked = Customer.objects.select_for_update().select_related("tier").get(pk=customer.pk)
        subscription_apply(locked, subscription)
    messages.success(request, f"You are now on {locked.tier.name}.")
    return _dashboard()


@login_required
@require_POST
def portal(request):
    customer = customer_ensure(user=request.user)
    return_url = request.build_absolute_uri(settings.BILLING_PAGE_PATH)
    return _to_stripe(request, lambda: gateway.portal_session_create(customer, return_url=return_url))


class SpendingCapForm(forms.Form):
    cap = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=10,
        decimal_places=2,
        label="Monthly overage cap (empty: no cap)",
    )


@login_required
@require_POST
def spending_cap(request):
    customer = customer_ensure(user=request.user)
    if not customer.tier.has_overage:
        messages.error(request, f"{customer.tier.name} has no overage to cap: it stops at the quota.")
        return _dashboard()
    form = SpendingCapForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("cap", []):
            messages.error(request, f"Spending cap: {error}")
        return _dashboard()
    cap = form.cleaned_data["cap"]
    Customer.objects.filter(pk=customer.pk).update(overage_spending_cap=cap)
    invalidate_key_contexts(customer_key_contexts([customer.pk]))
    if cap is None:
        messages.success(request, "Overage has no cap now.")
    else:
        shown = money_format(cap, customer.tier.currency, locale=visitor_locale(request))
        messages.success(request, f"Overage is capped at {shown} a month.")
    return _dashboard()


@csrf_exempt  # Stripe cannot send a CSRF token; the signature authenticates instead.
@require_POST
def stripe_webhook(request):
    """Verify, store once, answer at once; a Celery task applies the event."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        return JsonResponse(
            error_body("webhooks_not_configured", "STRIPE_WEBHOOK_SECRET is not set on this server."),
            status=503,
        )
    try:
        event = event_verify(request.body, request.headers.get("Stripe-Signature"))
    except SignatureInvalid as error:
        return JsonResponse(error_body("invalid_signature", str(error)), status=400)
    except EventMalformed as error:
        return JsonResponse(error_body("malformed_event", str(error)), status=400)
    with transaction.atomic():
        stored, created = event_store(event)
    return JsonResponse({"received": True, "id": stored.stripe_id, "duplicate": not created})
