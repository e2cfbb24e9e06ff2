import pytest
from django.db import connection

from apikeys.models import APIKey, KeyStatus
from apikeys.selectors import api_key_get_by_raw
from apikeys.services import InvalidKeyName, api_key_create, api_key_revoke


def test_creating_a_key_returns_the_raw_key_once_and_stores_its_hash(customer):
    created = api_key_create(customer=customer, name="ci")
    stored = APIKey.objects.get(pk=created.api_key.pk)
    assert created.raw_key.startswith(stored.prefix)
    assert stored.hashed_key != created.raw_key
    assert len(stored.hashed_key) == 64


def test_the_raw_key_appears_nowhere_in_the_database(customer):
    created = api_key_create(customer=customer, name="ci")
    secret_part = created.raw_key[len(created.api_key.prefix) :]
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(k)::text FROM apikeys_apikey k")
        rows = " ".join(row[0] for row in cursor.fetchall())
    assert created.api_key.prefix in rows
    assert secret_part not in rows


def test_a_key_is_found_by_its_raw_value(api_key):
    assert api_key_get_by_raw(api_key.raw_key) == api_key.api_key


def test_a_key_hashed_with_another_pepper_is_not_found(api_key, settings):
    settings.API_KEY_PEPPER = "another pepper"
    assert api_key_get_by_raw(api_key.raw_key) is None


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
