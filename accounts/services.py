"""Writes behind the account page: an email change taking effect, and
deleting the account.

Why a deleted account's User is anonymised rather than deleted: the usage
ledger (metering.UsageRecord) points at the Customer with PROTECT and at each
APIKey with RESTRICT, and the Customer points at the User with CASCADE.
Deleting the User would be refused (or, without usage yet, take the Customer
and its billing history with it), while usage already billed, or still to
be billed as overage, must stay for invoices, the reconcile and the revenue
reports, all of which read per Customer. So the User row stays with nothing
of the person left in it (no email, no name, a username "deleted-<id>", no
password, inactive, no staff rights, no email addresses), and the Customer,
its revoked keys, its usage records, overage reports and closed periods stay
as they were: reports keep their figures, and show "deleted-<id>" where an
email was.
"""

import logging

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from apikeys.models import APIKey
from apikeys.services import api_key_revoke
from billing.sync import customer_email_sync_queue, subscription_cancel_queue
from plans.models import ENDED, Customer
from plans.services import customer_ensure

logger = logging.getLogger(__name__)


def account_email_changed(*, user, old_email: str | None) -> None:
    """A new address was confirmed and is now the primary one: the username
    follows it when it was the old address (the username is the email, as
    sign-up and create_api_key make users, so both find the same user for one
    address; a username chosen otherwise, e.g. by createsuperuser, stays), and
    so does the Stripe customer's email, queued like every call to Stripe."""
    email = user.email.lower()
    if old_email:
        try:
            with transaction.atomic():
                users = get_user_model().objects.filter(pk=user.pk, username__iexact=old_email)
                users.update(username=email)
        except IntegrityError:
            # Another user holds it as a username: logins are by email, so only
            # create_api_key's lookup by username misses; keep the old one.
            logger.warning("user %s: username %r is taken; the username stays", user.pk, email)
    customer = Customer.objects.filter(user=user).first()
    if customer is not None:
        customer_email_sync_queue(customer)


def on_email_changed(sender, request, user, from_email_address, to_email_address, **kwargs) -> None:
    """allauth's email_changed signal (connected in accounts.apps)."""
    account_email_changed(user=user, old_email=from_email_address.email if from_email_address else None)


@transaction.atomic
def account_delete(*, user) -> Customer:
    """Delete the person's account, all or nothing; Stripe is told after commit.

    1. Lock the customer row: a checkout or webhook applied meanwhile waits.
    2. Revoke every key (their cached contexts are invalidated after commit).
    3. Queue the cancellation of a live subscription at Stripe (after commit,
       retried with backoff; Stripe down never blocks or undoes the deletion).
    4. Anonymise the user (see the module's docstring).
    """
    customer = customer_ensure(user=user)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    for api_key in APIKey.objects.filter(customer=customer, revoked_at__isnull=True):
        api_key_revoke(api_key=api_key)
    if customer.subscription_status not in ENDED:
        subscription_cancel_queue(customer)
    _anonymise(user)
    return customer


def _anonymise(user) -> None:
    EmailAddress.objects.filter(user=user).delete()  # their confirmations cascade
    user.username = f"deleted-{user.pk}"
    user.email = ""
    user.first_name = user.last_name = ""
    user.set_unusable_password()  # also ends the user's sessions everywhere
    user.is_active = user.is_staff = user.is_superuser = False
    user.save()
    user.groups.clear()
    user.user_permissions.clear()
