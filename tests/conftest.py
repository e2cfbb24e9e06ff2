"""Shared personas and the guard that the suite runs on real services.

The suite needs PostgreSQL and Redis (`make test` points DATABASE_URL and
REDIS_URL at the local servers). Rather than skip what needs them, it stops at
once with a message when either is missing.
"""

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.context import key_contexts
from apikeys.failures import failed_authentications
from apikeys.last_used import last_used_writer
from apikeys.models import APIKey
from apikeys.services import api_key_create, api_key_revoke
from plans.services import customer_get_or_create
from tests.celery_worker import via_broker  # noqa: F401 (a fixture for the worker tests)
from tests.redis_cluster import (  # noqa: F401 (Redis Cluster fixtures)
    on_redis_cluster,
    private_redis_cluster,
    redis_cluster,
    redis_layout,
    replicated_redis_cluster,
)
from tests.redis_sentinel import on_redis_sentinel  # noqa: F401 (the Redis Sentinel fixture)
from tests.utils import staff_user, view_permissions


def pytest_sessionstart(session):
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        pytest.exit(
            f"The tests need PostgreSQL, but DATABASE_URL gives {engine}. Run 'make test', "
            "or set DATABASE_URL=postgres://postgres@127.0.0.1:5432/saas.",
            returncode=3,
        )
    if not settings.REDIS_URL:
        pytest.exit("The tests need Redis: run 'make test' or set REDIS_URL.", returncode=3)
    from django_redis import get_redis_connection

    try:
        get_redis_connection("default").ping()
    except Exception as error:
        pytest.exit(f"Redis at {settings.REDIS_URL} does not answer: {error}", returncode=3)


@pytest.fixture(autouse=True)
def clean_redis():
    """Each test starts with an empty Redis database (the suite's own, not 0),
    an empty per-process key context cache, no address this process refuses
    for its failed authentications and no cost samples left in this process's
    aggregator by an earlier test."""
    from django_redis import get_redis_connection

    from metering.cost import cost_aggregator

    cost_aggregator.flush()  # to Redis (REDIS_URL is set here), emptied just below
    get_redis_connection("default").flushdb()
    key_contexts.clear()
    failed_authentications.clear()
    yield


@pytest.fixture(scope="session", autouse=True)
def last_uses_written_before_the_database_goes(django_db_setup, django_db_blocker):
    """The last-used writer thread writes within seconds of a request: let it
    finish before the test database is dropped under it."""
    yield
    with django_db_blocker.unblock():
        last_used_writer.wait_until_idle(timeout=10)


@pytest.fixture
def default_tiers(db):
    call_command("sync_tiers", str(settings.BASE_DIR / "tiers.toml"), stdout=io.StringIO())
    from plans.models import Tier

    return {tier.slug: tier for tier in Tier.objects.all()}


@pytest.fixture
def customer(default_tiers):
    """Alice, on the free tier."""
    return customer_get_or_create(email="alice@example.com")[0]


@pytest.fixture
def other_customer(default_tiers):
    """Bob, on the pro tier."""
    return customer_get_or_create(email="bob@example.com", tier_slug="pro")[0]


@pytest.fixture
def api_key(customer):
    """Alice's working key (a CreatedKey: .raw_key and .api_key)."""
    return api_key_create(customer=customer, name="laptop")


@pytest.fixture
def revoked_key(customer):
    created = api_key_create(customer=customer, name="old laptop")
    api_key_revoke(api_key=created.api_key)
    return created


@pytest.fixture
def expired_key(customer):
    created = api_key_create(customer=customer, name="temporary")
    now = timezone.now()
    APIKey.objects.filter(pk=created.api_key.pk).update(
        created_at=now - timedelta(days=2), expires_at=now - timedelta(days=1)
    )
    return created


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def key_client(api_key):
    """An API client that sends Alice's key as a Bearer token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw_key}")
    return client


@pytest.fixture
def view_only_staff(db, django_user_model):
    """Vic: staff who may look at everything in admin and change nothing."""
    return staff_user(django_user_model, "vic", *view_permissions())


@pytest.fixture
def view_only_client(view_only_staff):
    client = Client()
    client.force_login(view_only_staff)
    return client
