"""Stripe's side of the account page: deleting an account cancels its
subscription, and a confirmed new email reaches the Stripe customer, both as
queued, retried syncs (billing.sync) that Stripe being down never blocks."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from billing.models import StripeSync, SyncStatus
from billing.tasks import run_stripe_sync
from plans.models import Customer, SubscriptionStatus
from tests.web.conftest import confirm_email

from .stripe_double import SERVER_ERROR

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice(customer):
    confirm_email(customer.user)
    customer.user.set_password(PASSWORD)
    customer.user.save()
    return customer


@pytest.fixture
def alice_client(alice):
    client = Client()
    client.force_login(alice.user)
    return client


@pytest.fixture
def subscriber(alice, stripe_double, stripe_tiers):
    """Alice on Pro, with a live subscription at Stripe."""
    stripe_id = stripe_double._create_customer({"email": alice.user.email})[1]["id"]
    subscription = stripe_double.add_subscription(
        customer=stripe_id, price_ids=[stripe_tiers["pro"].stripe_price_id], period_start=0, period_end=1
    )
    Customer.objects.filter(pk=alice.pk).update(
        tier=stripe_tiers["pro"],
        stripe_customer_id=stripe_id,
        stripe_subscription_id=subscription["id"],
        subscription_status=SubscriptionStatus.ACTIVE,
    )
    return subscription


def delete(client, capture):
    with capture(execute=True):
        return client.post("/dashboard/account/delete/", {"password": PASSWORD})


def test_deleting_the_account_cancels_the_subscription_at_stripe(
    alice_client, subscriber, stripe_double, django_capture_on_commit_callbacks
):
    delete(alice_client, django_capture_on_commit_callbacks)
    (cancel,) = stripe_double.requests_to("DELETE", f"/v1/subscriptions/{subscriber['id']}")
    assert cancel.params == {"invoice_now": "true"}
    assert stripe_double.subscriptions[subscriber["id"]]["status"] == "canceled"
    sync = StripeSync.objects.get(operation="subscription_cancel")
    assert (sync.status, sync.result) == (SyncStatus.SUCCEEDED, {"status": "canceled"})


def test_the_deletion_page_names_the_subscription_it_cancels(alice_client, subscriber):
    page = alice_client.get("/dashboard/account/delete/").content.decode()
    assert "Your Pro subscription is cancelled at Stripe" in page


def test_stripe_down_does_not_block_the_deletion_and_a_replay_cancels_later(
    alice, alice_client, subscriber, stripe_double, django_capture_on_commit_callbacks
):
    stripe_double.fail("DELETE", "/v1/subscriptions/", SERVER_ERROR)
    response = delete(alice_client, django_capture_on_commit_callbacks)
    assert response["Location"] == "/dashboard/account/deleted/"
    assert get_user_model().objects.get(pk=alice.user.pk).email == ""
    sync = StripeSync.objects.get(operation="subscription_cancel")
    assert sync.status == SyncStatus.FAILED and sync.error.startswith("APIError")
    assert run_stripe_sync.apply(args=[sync.pk]).get() == "succeeded"  # the retry, or a replay from admin
    assert stripe_double.subscriptions[subscriber["id"]]["status"] == "canceled"


def test_a_replay_after_the_cancel_went_through_changes_nothing(
    alice_client, subscriber, stripe_double, django_capture_on_commit_callbacks
):
    delete(alice_client, django_capture_on_commit_callbacks)
    sync = StripeSync.objects.get(operation="subscription_cancel")
    StripeSync.objects.filter(pk=sync.pk).update(status=SyncStatus.FAILED)
    assert run_stripe_sync.apply(args=[sync.pk]).get() == "succeeded"
    assert StripeSync.objects.get(pk=sync.pk).result == {"status": "canceled"}


def test_without_stripe_configured_the_cancellation_owed_is_recorded_for_admin(
    alice, alice_client, subscriber, settings, django_capture_on_commit_callbacks
):
    settings.STRIPE_SECRET_KEY = ""
    delete(alice_client, django_capture_on_commit_callbacks)
    sync = StripeSync.objects.get(operation="subscription_cancel")
    assert sync.status == SyncStatus.FAILED
    assert get_user_model().objects.get(pk=alice.user.pk).email == ""


def test_a_customer_without_a_subscription_queues_nothing(
    alice, alice_client, stripe_double, django_capture_on_commit_callbacks
):
    delete(alice_client, django_capture_on_commit_callbacks)
    assert get_user_model().objects.get(pk=alice.user.pk).email == ""
    assert not StripeSync.objects.exists()
    assert not stripe_double.requests


# The email --------------------------------------------------------------------------


def change_and_confirm(client, capture, email="alice@new.example"):
    with capture(execute=True):
        client.post("/accounts/email/", {"email": email, "action_add": ""})
    link = re.search(r"https?://\S+(/accounts/confirm-email/\S+/)", mail.outbox[-1].body).group(1)
    with capture(execute=True):
        client.post(link)


def test_a_confirmed_new_email_reaches_the_stripe_customer(
    alice, alice_client, subscriber, stripe_double, django_capture_on_commit_callbacks
):
    change_and_confirm(alice_client, django_capture_on_commit_callbacks)
    stripe_id = Customer.objects.get(pk=alice.pk).stripe_customer_id
    (update,) = stripe_double.requests_to("POST", f"/v1/customers/{stripe_id}")
    assert update.params == {"email": "alice@new.example"}
    assert stripe_double.customers[stripe_id]["email"] == "alice@new.example"


def test_a_pending_email_is_not_sent_to_stripe(
    alice_client, subscriber, stripe_double, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post("/accounts/email/", {"email": "alice@new.example", "action_add": ""})
    assert not [r for r in stripe_double.requests if r.path.startswith("/v1/customers/")]


def test_stripe_down_leaves_the_email_change_done_and_the_sync_failed_for_a_replay(
    alice, alice_client, subscriber, stripe_double, django_capture_on_commit_callbacks
):
    stripe_double.fail("POST", "/v1/customers/", SERVER_ERROR)
    change_and_confirm(alice_client, django_capture_on_commit_callbacks)
    assert get_user_model().objects.get(pk=alice.user.pk).email == "alice@new.example"
    sync = StripeSync.objects.get(operation="customer_email")
    assert sync.status == SyncStatus.FAILED
    run_stripe_sync.apply(args=[sync.pk]).get()
    stripe_id = Customer.objects.get(pk=alice.pk).stripe_customer_id
    assert stripe_double.customers[stripe_id]["email"] == "alice@new.example"


def test_without_a_stripe_customer_an_email_change_queues_nothing(
    alice, alice_client, stripe_double, django_capture_on_commit_callbacks
):
    change_and_confirm(alice_client, django_capture_on_commit_callbacks)
    assert get_user_model().objects.get(pk=alice.user.pk).email == "alice@new.example"
    assert not StripeSync.objects.filter(operation="customer_email").exists()
