"""The API docs pages (Swagger UI at /api/docs/, Redoc at /api/redoc/) are
served from this site alone: a Content-Security-Policy keeps the browser from
fetching anything elsewhere, whatever the bundled scripts ask for (Redoc's
sidebar asks a CDN for its logo). tests/web/test_api_docs.py watches a real
browser's requests."""

import re

import pytest

DOCS_PAGES = ["/api/docs/", "/api/redoc/"]
SOURCE = re.compile(r'(?:src|href)="([^"]+)"')


def policy(response) -> dict[str, list[str]]:
    directives = [part.split() for part in response["Content-Security-Policy"].split(";") if part.strip()]
    return {name: sources for name, *sources in directives}


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_a_docs_page_lets_the_browser_load_nothing_from_another_site(client, db, path):
    directives = policy(client.get(path))
    assert directives["default-src"] == ["'self'"]
    for sources in directives.values():
        assert [source for source in sources if source.startswith(("http:", "https:", "*", "//"))] == []


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_a_docs_page_runs_no_inline_script(client, db, path):
    assert policy(client.get(path))["script-src"] == ["'self'"]
    html = client.get(path).content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_a_docs_page_references_only_local_urls(client, db, path):
    html = client.get(path).content.decode()
    sources = SOURCE.findall(html) + re.findall(r'spec-url="([^"]+)"', html)
    assert sources
    assert [source for source in sources if not source.startswith("/")] == []


def test_swagger_ui_sends_the_schema_to_no_online_validator(client, db):
    html = client.get("/api/docs/").content.decode()
    [init_script] = [url for url in SOURCE.findall(html) if "/api/docs/" in url]
    script = client.get(init_script).content.decode()
    assert '"validatorUrl": null' in script


def test_the_docs_init_script_answers_javascript(client, db):
    html = client.get("/api/docs/").content.decode()
    [init_script] = [url for url in SOURCE.findall(html) if "/api/docs/" in url]
    response = client.get(init_script)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
