"""A page asked with the wrong method answers an HTML 405 page, not a blank
one; the API keeps answering JSON."""

import pytest

from tests.faults.postgres import default_connection_through, postgres_proxy

from .pages import text


@pytest.mark.parametrize("path", ["/dashboard/keys/", "/billing/checkout/"])
def test_opening_a_post_only_page_answers_a_405_page(alice_client, path):
    response = alice_client.get(path)
    assert response.status_code == 405
    assert response["Content-Type"].startswith("text/html")
    assert "Method not allowed" in text(response)
    assert 'href="/dashboard/"' in response.content.decode()


def test_the_405_page_keeps_the_allow_header(alice_client):
    response = alice_client.get("/dashboard/keys/")
    assert response["Allow"] == "POST"


def test_posting_to_a_read_only_page_answers_the_405_page(client, default_tiers):
    response = client.post("/pricing/")
    assert response.status_code == 405
    assert "Method not allowed" in text(response)
    assert response["Allow"] == "GET, HEAD"


def test_a_head_request_gets_the_405_without_a_body(alice_client):
    response = alice_client.head("/billing/checkout/")
    assert response.status_code == 405
    assert response.content == b""


def test_the_api_keeps_its_json_405(key_client):
    response = key_client.post("/api/v1/echo")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_a_post_only_endpoint_asked_for_json_answers_json(client, db):
    response = client.get("/billing/stripe/webhook/", HTTP_ACCEPT="application/json")
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed", "detail": 'Method "GET" not allowed.'}


def test_the_refusal_is_logged_once(alice_client, caplog):
    alice_client.get("/dashboard/keys/")
    refusals = [record for record in caplog.records if record.getMessage().startswith("Method Not Allowed")]
    assert [record.getMessage() for record in refusals] == ["Method Not Allowed (GET): /dashboard/keys/"]


@pytest.mark.django_db(transaction=True)
def test_with_the_database_down_a_signed_in_wrong_method_answers_503_not_500(client, customer):
    # The pricing page refuses a POST before it reads anything; the 405 page's
    # layout reads the session and the user, which is where the database is missed.
    client.force_login(customer.user)
    with postgres_proxy() as proxy, default_connection_through(proxy):
        proxy.refuse()
        response = client.post("/pricing/")
    assert response.status_code == 503
    assert b"Temporarily unavailable" in response.content
