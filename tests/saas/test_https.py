"""HTTPS as deployed (the defaults with DEBUG off, which tests/settings.py turns
off for the rest of the suite): plain HTTP is redirected, except the health
check that load balancers probe over HTTP."""

import pytest


@pytest.fixture(autouse=True)
def deployed_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_a_page_over_plain_http_is_redirected_to_https(client, db):
    response = client.get("/pricing/")
    assert (response.status_code, response["Location"]) == (301, "https://testserver/pricing/")


def test_the_health_check_answers_over_plain_http(client, db):
    assert client.get("/healthz").status_code == 200


def test_over_https_browsers_are_told_to_keep_to_it(client, db):
    response = client.get("/pricing/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_behind_a_proxy_its_header_says_the_client_used_https(client, db):
    assert client.get("/pricing/", HTTP_X_FORWARDED_PROTO="https").status_code == 200
