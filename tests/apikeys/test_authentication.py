from datetime import timedelta

from django.utils import timezone

from apikeys.context import key_contexts
from apikeys.last_used import api_keys_record_use
from apikeys.models import APIKey

ECHO = "/api/v1/echo"


def assert_401(response, code):
    assert response.status_code == 401
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_bearer_key_is_accepted(api_client, api_key):
    response = api_client.get(ECHO, HTTP_AUTHORIZATION=f"Bearer {api_key.raw_key}")
    assert response.status_code == 200


def test_the_bearer_scheme_is_case_insensitive(api_client, api_key):
    response = api_client.get(ECHO, HTTP_AUTHORIZATION=f"bearer {api_key.raw_key}")
    assert response.status_code == 200


def test_an_x_api_key_header_is_accepted(api_client, api_key):
    assert api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key).status_code == 200


def test_no_key_is_401_missing_key(api_client, db):
    assert_401(api_client.get(ECHO), "missing_key")


def test_another_authorization_scheme_counts_as_no_key(api_client, db):
    assert_401(api_client.get(ECHO, HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz"), "missing_key")


def test_a_bearer_header_without_a_key_is_malformed(api_client, db):
    assert_401(api_client.get(ECHO, HTTP_AUTHORIZATION="Bearer"), "malformed_key")


def test_a_bearer_header_with_extra_words_is_malformed(api_client, api_key):
    response = api_client.get(ECHO, HTTP_AUTHORIZATION=f"Bearer {api_key.raw_key} extra")
    assert_401(response, "malformed_key")


def test_a_mistyped_key_is_rejected_without_any_query(api_client, api_key, django_assert_num_queries):
    typo = api_key.raw_key[:-1] + ("A" if api_key.raw_key[-1] != "A" else "B")
    with django_assert_num_queries(0):
        response = api_client.get(ECHO, HTTP_AUTHORIZATION=f"Bearer {typo}")
    assert_401(response, "malformed_key")


def test_an_empty_x_api_key_is_malformed(api_client, db):
    assert_401(api_client.get(ECHO, HTTP_X_API_KEY=""), "malformed_key")


def test_a_well_formed_key_that_was_never_issued_is_unknown(api_client, db):
    from apikeys.keys import generate_key

    assert_401(api_client.get(ECHO, HTTP_X_API_KEY=generate_key("tk_live_")), "unknown_key")


def test_a_revoked_key_is_rejected(api_client, revoked_key):
    assert_401(api_client.get(ECHO, HTTP_X_API_KEY=revoked_key.raw_key), "revoked_key")


def test_an_expired_key_is_rejected(api_client, expired_key):
    assert_401(api_client.get(ECHO, HTTP_X_API_KEY=expired_key.raw_key), "expired_key")


def test_a_key_expiring_in_the_future_still_works(api_client, api_key):
    APIKey.objects.filter(pk=api_key.api_key.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    assert api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key).status_code == 200


def test_a_key_without_the_scope_gets_403(api_client, api_key):
    APIKey.objects.filter(pk=api_key.api_key.pk).update(scopes=["billing"])
    response = api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_the_request_user_is_the_keys_owner(rf, api_key):
    from apikeys.authentication import APIKeyAuthentication

    request = rf.get(ECHO, HTTP_X_API_KEY=api_key.raw_key)
    user, auth = APIKeyAuthentication().authenticate(request)
    assert (user.email, auth.key_id) == ("alice@example.com", api_key.api_key.pk)


def test_use_is_recorded_in_last_used_at_when_the_process_flushes(api_client, api_key):
    api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key)
    assert APIKey.objects.get(pk=api_key.api_key.pk).last_used_at is None
    key_contexts.flush_last_used()
    assert APIKey.objects.get(pk=api_key.api_key.pk).last_used_at is not None


def test_last_used_at_never_moves_backwards(api_key):
    api_keys_record_use(last_used={api_key.api_key.pk: 2_000_000_000})
    api_keys_record_use(last_used={api_key.api_key.pk: 1_000_000_000})
    assert APIKey.objects.get(pk=api_key.api_key.pk).last_used_at.year == 2033


def test_a_known_key_makes_no_sql_query_in_steady_state(api_client, api_key, django_assert_num_queries):
    api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key)
    with django_assert_num_queries(0):
        assert api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key).status_code == 200


def test_a_made_up_key_is_looked_up_once_per_process(api_client, db, django_assert_num_queries):
    from apikeys.keys import generate_key

    made_up = generate_key("tk_live_")
    api_client.get(ECHO, HTTP_X_API_KEY=made_up)
    with django_assert_num_queries(0):
        assert_401(api_client.get(ECHO, HTTP_X_API_KEY=made_up), "unknown_key")


def test_revoking_a_cached_key_takes_effect(api_client, api_key, django_capture_on_commit_callbacks):
    from apikeys.services import api_key_revoke

    assert api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key.api_key)
    assert_401(api_client.get(ECHO, HTTP_X_API_KEY=api_key.raw_key), "revoked_key")
