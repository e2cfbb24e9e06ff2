"""Rotation with an overlap window, the limit of active keys, and key names
(issue 16, keys)."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from apikeys.models import APIKey, KeyStatus
from apikeys.services import (
    InvalidKeyName,
    KeyNotActive,
    TooManyKeys,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
)

NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def at_noon(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


def echo_status(raw_key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get("/api/v1/echo?msg=hi").status_code


def test_rotating_with_an_overlap_keeps_the_old_key_working_until_the_window_ends(customer, at_noon):
    old = api_key_create(customer=customer, name="deploy")
    new = api_key_rotate(api_key=old.api_key, overlap=timedelta(hours=1), now=NOW)
    assert echo_status(old.raw_key) == 200
    assert echo_status(new.raw_key) == 200
    at_noon.move_to(NOW + timedelta(hours=1, seconds=1), tick=False)
    assert echo_status(old.raw_key) == 401
    assert echo_status(new.raw_key) == 200


def test_the_old_key_gets_the_end_of_the_window_as_its_expiry_not_a_revocation(customer):
    old = api_key_create(customer=customer, name="deploy").api_key
    api_key_rotate(api_key=old, overlap=timedelta(hours=24), now=NOW)
    old.refresh_from_db()
    assert (old.expires_at, old.revoked_at, old.rotated_at) == (NOW + timedelta(hours=24), None, NOW)


def test_rotating_with_an_overlap_drops_the_cached_context_of_the_old_key(
    customer, at_noon, django_capture_on_commit_callbacks
):
    old = api_key_create(customer=customer, name="deploy")
    assert echo_status(old.raw_key) == 200  # its context (no expiry) is cached now
    with django_capture_on_commit_callbacks(execute=True):
        api_key_rotate(api_key=old.api_key, overlap=timedelta(hours=1), now=NOW)
    at_noon.move_to(NOW + timedelta(hours=2), tick=False)
    assert echo_status(old.raw_key) == 401


def test_rotating_with_no_overlap_revokes_the_old_key_at_once(api_key):
    api_key_rotate(api_key=api_key.api_key, overlap=timedelta(0))
    assert APIKey.objects.get(pk=api_key.api_key.pk).status() == KeyStatus.REVOKED
    assert echo_status(api_key.raw_key) == 401


def test_an_overlap_never_makes_an_earlier_expiry_later(customer):
    soon = NOW + timedelta(minutes=30)
    old = api_key_create(customer=customer, name="deploy", expires_at=soon).api_key
    new = api_key_rotate(api_key=old, overlap=timedelta(days=7), now=NOW).api_key
    old.refresh_from_db()
    assert old.expires_at == soon
    assert new.expires_at == soon  # the new key inherits the expiry the old one was given


def test_the_new_key_inherits_name_scopes_and_expiry(customer):
    later = NOW + timedelta(days=30)
    old = api_key_create(customer=customer, name="deploy", scopes=["api"], expires_at=later).api_key
    new = api_key_rotate(api_key=old, overlap=timedelta(hours=1), now=NOW).api_key
    assert (new.name, new.scopes, new.expires_at) == ("deploy", ["api"], later)


def test_a_key_rotated_with_an_overlap_cannot_be_rotated_again(customer):
    old = api_key_create(customer=customer, name="deploy").api_key
    stale = APIKey.objects.get(pk=old.pk)  # read before the first rotation, as a double click would
    api_key_rotate(api_key=old, overlap=timedelta(hours=1), now=NOW)
    with pytest.raises(KeyNotActive):
        api_key_rotate(api_key=stale, overlap=timedelta(hours=1), now=NOW)
    assert APIKey.objects.count() == 2


def test_a_key_in_its_overlap_window_can_still_be_revoked(customer):
    old = api_key_create(customer=customer, name="deploy")
    api_key_rotate(api_key=old.api_key, overlap=timedelta(hours=1))
    assert api_key_revoke(api_key=APIKey.objects.get(pk=old.api_key.pk))
    assert echo_status(old.raw_key) == 401


def test_a_customer_cannot_have_more_active_keys_than_the_limit(customer, settings):
    settings.API_KEYS_PER_CUSTOMER = 3
    for number in range(3):
        api_key_create(customer=customer, name=f"key {number}")
    with pytest.raises(TooManyKeys, match="3 active keys"):
        api_key_create(customer=customer, name="one too many")
    assert APIKey.objects.count() == 3


def test_revoked_and_expired_keys_do_not_count_against_the_limit(
    customer, revoked_key, expired_key, settings
):
    settings.API_KEYS_PER_CUSTOMER = 1
    api_key_create(customer=customer, name="the one")
    with pytest.raises(TooManyKeys):
        api_key_create(customer=customer, name="the other")


def test_rotating_without_an_overlap_is_allowed_at_the_limit(api_key, settings):
    settings.API_KEYS_PER_CUSTOMER = 1
    new = api_key_rotate(api_key=api_key.api_key, overlap=timedelta(0))
    assert new.api_key.status() == KeyStatus.ACTIVE


def test_rotating_with_an_overlap_at_the_limit_is_refused(api_key, settings):
    settings.API_KEYS_PER_CUSTOMER = 1
    with pytest.raises(TooManyKeys):
        api_key_rotate(api_key=api_key.api_key, overlap=timedelta(hours=1))
    assert APIKey.objects.get(pk=api_key.api_key.pk).status() == KeyStatus.ACTIVE


def test_thirty_three_keys_in_a_row_are_not_all_accepted(customer, settings):
    settings.API_KEYS_PER_CUSTOMER = 20
    created = 0
    for number in range(33):
        try:
            api_key_create(customer=customer, name=f"key {number}")
            created += 1
        except TooManyKeys:
            pass
    assert created == 20


@pytest.mark.parametrize("name", ["\u200b", " \u200b\u200c\u2060 ", "\ufeff", "\x00\x07", "\u2028"])
def test_a_name_of_only_invisible_characters_is_refused(customer, name):
    with pytest.raises(InvalidKeyName, match="visible character"):
        api_key_create(customer=customer, name=name)
    assert not APIKey.objects.exists()


def test_invisible_characters_are_removed_from_a_name_and_spaces_collapsed(customer):
    created = api_key_create(customer=customer, name="  pro\u200bduction\u00a0 \t server\x07 ")
    assert created.api_key.name == "production server"
