"""Pepper versions (apikeys/peppers.py): a stored hash carries its pepper's
version, a new pepper becomes current while keys hashed with an older one
keep working, and removing a pepper stops only the keys still hashed with it."""

import io
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apikeys import keys
from apikeys.context import key_contexts
from apikeys.models import APIKey
from apikeys.services import api_key_create

ECHO = "/api/v1/echo"
FIRST, SECOND = "the first pepper " * 3, "the second pepper " * 3


@pytest.fixture(autouse=True)
def first_pepper_current(settings):
    settings.API_KEY_PEPPER, settings.API_KEY_PEPPER_VERSION = FIRST, 1
    settings.API_KEY_OLD_PEPPERS = {}


def make_second_pepper_current(settings):
    """A new deploy: pepper 2 hashes new keys, pepper 1 is kept for the keys made under it."""
    settings.API_KEY_PEPPER, settings.API_KEY_PEPPER_VERSION = SECOND, 2
    settings.API_KEY_OLD_PEPPERS = {1: FIRST}
    key_contexts.clear()  # each process starts afresh with its new settings


def remove_first_pepper(settings):
    settings.API_KEY_OLD_PEPPERS = {}
    key_contexts.clear()


def stored_hash(created) -> str:
    return APIKey.objects.get(pk=created.api_key.pk).hashed_key


def status(api_client, created) -> int:
    return api_client.get(ECHO, HTTP_X_API_KEY=created.raw_key).status_code


def test_a_stored_hash_is_the_version_then_the_hmac_with_that_pepper():
    key = keys.generate_key("tk_live_")
    assert keys.stored_hash(key, 7, "pepper") == "v7$" + keys.hash_key(key, "pepper")


def test_a_new_key_stores_the_current_peppers_version(customer):
    created = api_key_create(customer=customer, name="ci")
    assert stored_hash(created) == keys.stored_hash(created.raw_key, 1, FIRST)


def test_after_the_second_pepper_becomes_current_a_new_key_uses_it(customer, settings):
    make_second_pepper_current(settings)
    created = api_key_create(customer=customer, name="ci")
    assert stored_hash(created) == keys.stored_hash(created.raw_key, 2, SECOND)


def test_a_key_made_under_the_first_pepper_keeps_working_after_the_second_becomes_current(
    api_client, customer, settings
):
    created = api_key_create(customer=customer, name="ci")
    make_second_pepper_current(settings)
    assert status(api_client, created) == 200


def test_removing_the_first_pepper_stops_its_keys_only(api_client, customer, settings):
    made_under_first = api_key_create(customer=customer, name="old")
    make_second_pepper_current(settings)
    made_under_second = api_key_create(customer=customer, name="new")
    remove_first_pepper(settings)
    response = api_client.get(ECHO, HTTP_X_API_KEY=made_under_first.raw_key)
    assert (response.status_code, response.json()["error"]) == (401, "unknown_key")
    assert status(api_client, made_under_second) == 200


def test_a_key_used_under_the_second_pepper_is_moved_to_it(api_client, customer, settings):
    created = api_key_create(customer=customer, name="ci")
    make_second_pepper_current(settings)
    status(api_client, created)
    assert stored_hash(created) == keys.stored_hash(created.raw_key, 2, SECOND)


def test_a_moved_key_survives_the_removal_of_the_first_pepper(api_client, customer, settings):
    created = api_key_create(customer=customer, name="ci")
    make_second_pepper_current(settings)
    status(api_client, created)
    remove_first_pepper(settings)
    assert status(api_client, created) == 200


def key_queries(captured) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if "apikeys_apikey" in query["sql"]]


def test_with_two_peppers_a_key_is_found_in_one_query(
    api_client, customer, settings, django_assert_num_queries
):
    make_second_pepper_current(settings)
    created = api_key_create(customer=customer, name="ci")
    with CaptureQueriesContext(connection) as captured:  # the first request also seeds the quota
        assert status(api_client, created) == 200
    assert len(key_queries(captured)) == 1
    with django_assert_num_queries(0):
        assert status(api_client, created) == 200


def test_with_two_peppers_an_unknown_key_costs_one_query(api_client, db, settings, django_assert_num_queries):
    make_second_pepper_current(settings)
    with django_assert_num_queries(1):
        response = api_client.get(ECHO, HTTP_X_API_KEY=keys.generate_key("tk_live_"))
    assert response.status_code == 401


def test_the_lookup_by_every_pepper_can_use_the_hash_index(api_client, customer, settings):
    make_second_pepper_current(settings)
    created = api_key_create(customer=customer, name="ci")
    with CaptureQueriesContext(connection) as captured:
        status(api_client, created)
    [lookup] = key_queries(captured)
    assert keys.stored_hash(created.raw_key, 1, FIRST) in lookup  # both candidates, one query
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned otherwise
        cursor.execute(f"EXPLAIN {lookup}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert re.search(r"Index Scan (using|on) apikeys_apikey_hashed_key", plan), plan


def test_the_pepper_report_counts_active_keys_by_version(customer, revoked_key, settings):
    api_key_create(customer=customer, name="first")
    make_second_pepper_current(settings)
    api_key_create(customer=customer, name="second")
    out = io.StringIO()
    call_command("api_key_peppers", stdout=out)
    assert out.getvalue().splitlines() == [
        "v2  current   1 active key",
        "v1  older     1 active key",
    ]


def test_the_pepper_report_names_keys_left_without_a_pepper(customer, settings):
    api_key_create(customer=customer, name="first")
    make_second_pepper_current(settings)
    remove_first_pepper(settings)
    out = io.StringIO()
    call_command("api_key_peppers", stdout=out)
    assert out.getvalue().splitlines() == [
        "v2  current   0 active keys",
        "v1  missing   1 active key (these no longer authenticate)",
    ]
