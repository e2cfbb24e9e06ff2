import re

import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.validation import validate_schema

ASSET = re.compile(r'(?:src|href)="(/static/[^"]+)"')


@pytest.fixture
def schema(client, db):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_valid_openapi(schema):
    validate_schema(schema)  # raises on an invalid schema


def test_the_schema_answers_json_by_accept_header(client, db):
    response = client.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    assert "openapi" in response.json()


@pytest.mark.parametrize("path", ["/api/v1/echo", "/api/v1/primes", "/api/v1/timezones"])
def test_the_schema_lists_each_endpoint(schema, path):
    assert path in schema["paths"]


def test_the_schema_declares_bearer_authentication(schema):
    schemes = schema["components"]["securitySchemes"].values()
    assert {"type": "http", "scheme": "bearer"}.items() <= next(iter(schemes)).items()


def test_the_schema_is_public_even_with_a_bad_key(client, db):
    response = client.get("/api/schema/", {"format": "json"}, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 200


def test_the_docs_answer_html(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


def test_the_docs_load_nothing_from_another_site(client, db):
    html = client.get("/api/docs/").content.decode()
    assert "http://" not in html
    assert "https://" not in html


def test_the_docs_serve_their_swagger_ui_assets_locally(client, db):
    html = client.get("/api/docs/").content.decode()
    assets = ASSET.findall(html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in assets)
    assert any(url.endswith("swagger-ui.css") for url in assets)
    for url in assets:
        # WhiteNoise sits in the middleware, so the test client reaches it.
        response = client.get(url)
        assert response.status_code == 200, url
        with open(finders.find(url.removeprefix("/static/")), "rb") as local:
            assert b"".join(response.streaming_content) == local.read(), url


def test_the_redoc_page_answers_html(client, db):
    response = client.get("/api/redoc/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


def test_the_redoc_page_serves_its_script_locally(client, db):
    html = client.get("/api/redoc/").content.decode()
    [script] = [url for url in ASSET.findall(html) if url.endswith("redoc.standalone.js")]
    assert client.get(script).status_code == 200


def test_the_redoc_page_loads_nothing_from_another_site(client, db):
    html = client.get("/api/redoc/").content.decode()
    assert "http://" not in html
    assert "https://" not in html
