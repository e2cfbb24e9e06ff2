"""Schemathesis drives the API in-process (WSGI) from its own schema, on the
real PostgreSQL and Redis, with every built-in check: each answer, error or
not, must be one the schema documents, body and headers included.

`make api-check` runs the same checks over HTTP against a server it starts.
"""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from apikeys.services import api_key_create
from plans.models import Tier
from plans.services import customer_get_or_create


def served_schema() -> dict:
    """The schema /api/schema/ serves, generated at collection (schemathesis's
    loader from a fixture does not run on this pytest), as JSON would carry it."""
    return json.loads(json.dumps(SchemaGenerator().get_schema(public=True), default=str))


schema = schemathesis.openapi.from_dict(served_schema())
schema.app = get_wsgi_application()  # requests go in-process to Django's WSGI handler
schema.location = "/api/schema/"


@pytest.fixture
def unlimited_key(default_tiers):
    """A key whose limits the run cannot reach: a 429 here would be a limit
    the test hit, not a fault; the limits have tests of their own."""
    tier = Tier.objects.create(
        slug="schemathesis", name="Schemathesis", price=0, currency="usd", quota=10**9, burst=10**6
    )
    customer = customer_get_or_create(email="schemathesis@example.com", tier_slug=tier.slug)[0]
    return api_key_create(customer=customer, name="schemathesis")


@pytest.fixture
def in_process(db, settings):
    """Django's WSGI handler inside the test's transaction: as Django's own
    test client does, requests do not close the database connection (which
    would end the transaction the test runs in)."""
    settings.ALLOWED_HOSTS = ["localhost"]  # the Host schemathesis's WSGI client sends
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
# The same examples on every run (no flaky CI, no example database written to
# the work tree); `make api-check` explores anew each time.
@hypothesis_settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_answers_as_its_schema_says(case, in_process, unlimited_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {unlimited_key.raw_key}"})
