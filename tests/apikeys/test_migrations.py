"""Keys stored before hashes carried a version keep working after the migration."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apikeys import keys
from apikeys.models import APIKey

BEFORE_VERSIONS = [("apikeys", "0002_customer_in_plans")]


@pytest.mark.django_db(transaction=True)
def test_a_hash_stored_before_versions_becomes_a_version_1_hash_and_keeps_working(
    customer, api_client, settings
):
    raw_key = keys.generate_key(settings.API_KEY_PREFIX)
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_VERSIONS)
    old_model = executor.loader.project_state(BEFORE_VERSIONS).apps.get_model("apikeys", "APIKey")
    old_model.objects.create(
        customer_id=customer.pk,
        name="from before",
        prefix=keys.public_prefix(raw_key, settings.API_KEY_PREFIX),
        hashed_key=keys.hash_key(raw_key, settings.API_KEY_PEPPER),
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert APIKey.objects.get().hashed_key == keys.stored_hash(raw_key, 1, settings.API_KEY_PEPPER)
    assert api_client.get("/api/v1/echo", HTTP_X_API_KEY=raw_key).status_code == 200
