from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apikeys import keys
from apikeys.models import APIKey, KeyStatus
from apikeys.services import InvalidKeyName, KeyNotActive, api_key_create, api_key_revoke, api_key_rotate


def test_creating_a_key_returns_the_raw_key_once_and_stores_its_hash(customer):
    created = api_key_create(customer=customer, name="ci")
    stored = APIKey.objects.get(pk=created.api_key.pk)
    assert created.raw_key.startswith(stored.prefix)
    assert stored.hashed_key != created.raw_key
    assert stored.hashed_key.startswith("v1$") and len(stored.hashed_key) == 3 + 64


def test_the_raw_key_appears_nowhere_in_the_database(customer):
    created = api_key_create(customer=customer, name="ci")
    secret_part = created.raw_key[len(created.api_key.prefix) :]
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(k)::text FROM apikeys_apikey k")
        rows = " ".join(row[0] for row in cursor.fetchall())
    assert created.api_key.prefix in rows
    assert secret_part not in rows


def test_only_the_peppered_hmac_of_the_key_is_stored_with_the_peppers_version(api_key, settings):
    expected = keys.stored_hash(api_key.raw_key, settings.API_KEY_PEPPER_VERSION, settings.API_KEY_PEPPER)
    assert api_key.api_key.hashed_key == expected


def test_a_key_hashed_with_another_pepper_is_not_found(api_key, api_client, settings):
    settings.API_KEY_PEPPER = "another pepper"
    response = api_client.get("/api/v1/echo", HTTP_AUTHORIZATION=f"Bearer {api_key.raw_key}")
    assert response.status_code == 401


def test_new_keys_have_the_default_scope(api_key):
    assert api_key.api_key.scopes == ["api"]


def test_a_blank_name_is_refused(customer):
    with pytest.raises(InvalidKeyName):
        api_key_create(customer=customer, name="   ")


def test_a_name_over_100_characters_is_refused(customer):
    with pytest.raises(InvalidKeyName):
        api_key_create(customer=customer, name="k" * 101)


def test_revoking_sets_the_time_once(api_key):
    assert api_key_revoke(api_key=api_key.api_key) is True
    first = APIKey.objects.get(pk=api_key.api_key.pk).revoked_at
    assert api_key_revoke(api_key=APIKey.objects.get(pk=api_key.api_key.pk)) is False
    assert APIKey.objects.get(pk=api_key.api_key.pk).revoked_at == first


def test_the_status_follows_revocation_and_expiry(api_key, revoked_key, expired_key):
    statuses = {key.name: key.status() for key in APIKey.objects.all()}
    assert statuses == {
        "laptop": KeyStatus.ACTIVE,
        "old laptop": KeyStatus.REVOKED,
        "temporary": KeyStatus.EXPIRED,
    }


def test_rotating_revokes_the_key_and_makes_one_with_its_name_scopes_and_expiry(api_key, settings):
    future = timezone.now() + timedelta(days=30)
    APIKey.objects.filter(pk=api_key.api_key.pk).update(scopes=["api", "reports"], expires_at=future)
    old = APIKey.objects.get(pk=api_key.api_key.pk)
    created = api_key_rotate(api_key=old)
    assert APIKey.objects.get(pk=old.pk).status() == KeyStatus.REVOKED
    new = created.api_key
    assert (new.name, new.scopes, new.expires_at, new.customer_id) == (
        "laptop",
        ["api", "reports"],
        future,
        old.customer_id,
    )
    assert new.hashed_key == keys.stored_hash(
        created.raw_key, settings.API_KEY_PEPPER_VERSION, settings.API_KEY_PEPPER
    )


def test_a_revoked_or_expired_key_is_not_rotated(revoked_key, expired_key):
    for created in (revoked_key, expired_key):
        with pytest.raises(KeyNotActive):
            api_key_rotate(api_key=APIKey.objects.get(pk=created.api_key.pk))
    assert APIKey.objects.count() == 2


def test_rotating_a_key_already_revoked_elsewhere_makes_nothing(api_key):
    stale = APIKey.objects.get(pk=api_key.api_key.pk)  # read before another request revoked it
    api_key_revoke(api_key=APIKey.objects.get(pk=api_key.api_key.pk))
    with pytest.raises(KeyNotActive):
        api_key_rotate(api_key=stale)
    assert APIKey.objects.count() == 1
