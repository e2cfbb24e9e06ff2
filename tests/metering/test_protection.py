"""Keys and customers with usage are revoked, never deleted from under it
(metering/protection.py, the foreign keys of UsageRecord, the admin)."""

import pytest
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError, Sum

from apikeys.models import APIKey
from metering.flush import flush_usage
from metering.models import UsageRecord
from plans.models import Customer

ECHO = "/api/v1/echo"


@pytest.fixture
def served(key_client, customer):
    """Alice was served 3 billable requests, still pending in Redis."""
    for _ in range(3):
        assert key_client.get(ECHO).status_code == 200
    return customer


def recorded(customer) -> int:
    return UsageRecord.objects.filter(customer=customer).aggregate(total=Sum("count"))["total"] or 0


def test_an_api_key_with_pending_usage_cannot_be_deleted(served, api_key):
    with pytest.raises(ProtectedError), transaction.atomic():
        api_key.api_key.delete()
    flush_usage()
    assert recorded(served) == 3


def test_an_api_key_with_flushed_usage_cannot_be_deleted(served, api_key):
    flush_usage()
    with pytest.raises(RestrictedError):
        api_key.api_key.delete()


def test_an_api_key_without_usage_can_be_deleted(api_key):
    api_key.api_key.delete()
    assert not APIKey.objects.exists()


def test_a_customer_with_pending_usage_cannot_be_deleted(served):
    with pytest.raises(ProtectedError), transaction.atomic():
        served.delete()
    flush_usage()
    assert recorded(served) == 3


def test_a_customer_with_flushed_usage_cannot_be_deleted(served):
    flush_usage()
    with pytest.raises(ProtectedError):
        served.delete()
    assert recorded(served) == 3


def test_a_customer_without_usage_can_be_deleted(customer, api_key):
    customer.delete()
    assert not Customer.objects.exists()


def test_the_admin_does_not_delete_api_keys(admin_client, served, api_key):
    response = admin_client.post(f"/admin/apikeys/apikey/{api_key.api_key.pk}/delete/", {"post": "yes"})
    flush_usage()
    assert (response.status_code, recorded(served)) == (403, 3)


def test_the_admin_refuses_to_delete_a_customer_with_pending_usage_and_says_why(admin_client, served):
    response = admin_client.post(f"/admin/plans/customer/{served.pk}/delete/", {"post": "yes"})
    assert Customer.objects.filter(pk=served.pk).exists()
    assert "3 billable units not yet flushed" in response.content.decode()


def test_the_admin_deletes_a_customer_without_usage_with_its_keys(admin_client, customer, api_key):
    admin_client.post(f"/admin/plans/customer/{customer.pk}/delete/", {"post": "yes"})
    assert not Customer.objects.filter(pk=customer.pk).exists()
