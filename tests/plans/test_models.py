from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from plans.models import Customer, Tier

pytestmark = pytest.mark.django_db


def make_tier(**overrides):
    fields = dict(slug="t", name="T", price=Decimal("1.00"), quota=10, quota_period="day", burst=1)
    return Tier.objects.create(**{**fields, **overrides})


def assert_rejected_by_database(**overrides):
    with pytest.raises(IntegrityError), transaction.atomic():
        make_tier(**overrides)


def test_a_valid_tier_saves():
    assert make_tier().pk


def test_the_database_rejects_a_negative_price():
    assert_rejected_by_database(price=Decimal("-1"))


def test_the_database_rejects_a_zero_quota():
    assert_rejected_by_database(quota=0)


def test_the_database_rejects_a_zero_burst():
    assert_rejected_by_database(burst=0)


def test_the_database_rejects_an_unknown_quota_period():
    assert_rejected_by_database(quota_period="fortnight")


def test_the_database_rejects_a_negative_overage_price():
    assert_rejected_by_database(overage_price_per_1000=Decimal("-0.5"))


def test_the_database_rejects_an_uppercase_currency():
    assert_rejected_by_database(currency="USD")


def test_the_database_rejects_a_currency_that_is_not_three_letters():
    assert_rejected_by_database(currency="us")


def test_the_database_rejects_a_duplicate_slug():
    make_tier()
    assert_rejected_by_database(name="Other")


def test_an_empty_overage_price_means_a_hard_limit():
    assert make_tier().has_overage is False
    assert make_tier(slug="zero", overage_price_per_1000=Decimal("0")).has_overage is False
    assert make_tier(slug="paid", overage_price_per_1000=Decimal("0.40")).has_overage is True


def test_a_tier_with_customers_cannot_be_deleted(customer):
    with pytest.raises(ProtectedError):
        customer.tier.delete()


def test_two_customers_cannot_share_a_stripe_customer_id(customer, other_customer):
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id="cus_1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.filter(pk=other_customer.pk).update(stripe_customer_id="cus_1")


def test_many_customers_may_have_no_stripe_customer_id(customer, other_customer):
    assert customer.stripe_customer_id == other_customer.stripe_customer_id == ""


def test_a_user_has_at_most_one_customer(customer, default_tiers):
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(user=customer.user, tier=default_tiers["pro"])


def test_the_database_rejects_an_unknown_subscription_status(customer):
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(subscription_status="happy")


def test_a_billing_period_must_end_after_it_starts(customer):
    from django.utils import timezone

    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(current_period_start=now, current_period_end=now)


def test_deleting_a_user_deletes_their_customer(customer):
    get_user_model().objects.filter(pk=customer.user_id).delete()
    assert not Customer.objects.filter(pk=customer.pk).exists()
