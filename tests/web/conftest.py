"""Personas for the web pages: Alice signed in with a confirmed email, and an
unconfirmed newcomer. Bob (the other customer) comes from tests/conftest.py."""

import pytest
from allauth.account.models import EmailAddress
from django.test import Client


def confirm_email(user) -> None:
    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )


@pytest.fixture
def alice(customer):
    """Alice's customer, her email confirmed."""
    confirm_email(customer.user)
    return customer


@pytest.fixture
def alice_client(alice):
    client = Client()
    client.force_login(alice.user)
    return client


@pytest.fixture
def newcomer_client(customer):
    """Alice signed in before she confirmed her email."""
    EmailAddress.objects.create(user=customer.user, email=customer.user.email, verified=False, primary=True)
    client = Client()
    client.force_login(customer.user)
    return client


@pytest.fixture
def bob_key(other_customer):
    from apikeys.services import api_key_create

    confirm_email(other_customer.user)
    return api_key_create(customer=other_customer, name="bob's server")
