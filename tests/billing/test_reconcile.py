"""The periodic reconcile: heal what missed webhooks left behind."""

import time

import pytest

from billing.reconcile import customer_reconcile
from billing.tasks import reconcile_subscriptions_task
from plans.models import Customer, SubscriptionStatus

from .conftest import make_event
from .stripe_double import SERVER_ERROR

pytestmark = pytest.mark.django_db


def fresh(customer) -> Customer:
    return Customer.objects.select_related("tier").get(pk=customer.pk)


def subscription_for(double, customer, tier, **options):
    now = int(time.time())
    return double.add_subscription(
        customer=customer.stripe_customer_id,
        price_ids=[tier.stripe_price_id],
        period_start=now - 3600,
        period_end=now + 30 * 86_400,
        metadata={"customer_id": str(customer.pk)},
        **options,
    )


def test_a_missed_upgrade_webhook_is_healed(
    stripe_double, stripe_tiers, stripe_customer, django_capture_on_commit_callbacks
):
    subscription_for(stripe_double, stripe_customer, stripe_tiers["pro"])  # webhook never arrived
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile_subscriptions_task() == 1
    customer = fresh(stripe_customer)
    assert (customer.tier.slug, customer.subscription_status) == ("pro", SubscriptionStatus.ACTIVE)


def test_a_missed_cancellation_is_healed(stripe_double, stripe_tiers, stripe_customer):
    subscription = subscription_for(stripe_double, stripe_customer, stripe_tiers["pro"])
    customer_reconcile(stripe_customer.pk)
    stripe_double.update_subscription(subscription["id"], status="canceled", ended_at=int(time.time()))
    assert customer_reconcile(stripe_customer.pk) == "healed"
    assert fresh(stripe_customer).tier.slug == "free"


def test_a_customer_in_sync_is_left_as_is(stripe_double, stripe_tiers, stripe_customer):
    subscription_for(stripe_double, stripe_customer, stripe_tiers["pro"])
    assert customer_reconcile(stripe_customer.pk) == "healed"
    assert customer_reconcile(stripe_customer.pk) == "in sync"


def test_the_live_subscription_wins_over_an_ended_older_one(stripe_double, stripe_tiers, stripe_customer):
    subscription_for(stripe_double, stripe_customer, stripe_tiers["enterprise"])
    subscription_for(
        stripe_double, stripe_customer, stripe_tiers["pro"], status="canceled", created=int(time.time())
    )
    customer_reconcile(stripe_customer.pk)
    assert fresh(stripe_customer).tier.slug == "enterprise"


def test_an_event_older_than_the_reconciled_state_changes_nothing(
    stripe_double, stripe_tiers, stripe_customer, deliver
):
    subscription = subscription_for(stripe_double, stripe_customer, stripe_tiers["pro"])
    stale = make_event(
        "customer.subscription.deleted", dict(subscription, status="canceled"), created=int(time.time()) - 60
    )
    customer_reconcile(stripe_customer.pk)
    deliver(stale)  # Stripe says active now; the old event is refused anyway
    assert fresh(stripe_customer).tier.slug == "pro"


def test_stripe_failing_raises_for_the_task_to_retry(stripe_double, stripe_tiers, stripe_customer):
    stripe_double.fail("GET", "/v1/subscriptions", SERVER_ERROR)
    with pytest.raises(Exception, match="Something went wrong on Stripe's end"):
        customer_reconcile(stripe_customer.pk)
    assert fresh(stripe_customer).tier.slug == "free"


def test_customers_stripe_does_not_know_are_skipped(stripe_double, stripe_tiers, customer):
    assert reconcile_subscriptions_task() == 0
    assert customer_reconcile(customer.pk) == "no stripe customer"
