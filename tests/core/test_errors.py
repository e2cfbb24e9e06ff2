import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404

from core.errors import json_exception_handler


def test_an_unknown_api_path_answers_json_404(client, db):
    response = client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "not_found", "detail": "No endpoint at /api/v1/nope."}


def test_an_unknown_page_answers_html_404(client, db):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Not found" in response.content


def test_the_handler_renders_django_http404_as_json():
    response = json_exception_handler(Http404("secret detail"), {"view": None, "request": None})
    assert response.status_code == 404
    assert response.data["error"] == "not_found"
    assert response.data["detail"]


def test_the_handler_renders_django_permission_denied_as_json():
    response = json_exception_handler(PermissionDenied(), {"view": None, "request": None})
    assert response.status_code == 403
    assert response.data["error"] == "permission_denied"
    assert response.data["detail"]


def test_the_handler_leaves_other_exceptions_to_django():
    assert json_exception_handler(ValueError("boom"), {"view": None, "request": None}) is None


def test_the_handler_renders_an_unreachable_database_as_503_database_unavailable(settings):
    from django.db import InterfaceError, OperationalError

    settings.DATABASE_UNAVAILABLE_RETRY_AFTER = 7
    for error in (OperationalError("connection refused"), InterfaceError("connection already closed")):
        response = json_exception_handler(error, {"view": None, "request": None})
        assert response.status_code == 503
        assert response.data["error"] == "database_unavailable"
        assert response["Retry-After"] == "7"


def test_the_handler_leaves_other_database_errors_to_the_500_handler():
    from django.db import ProgrammingError

    assert json_exception_handler(ProgrammingError("no such column"), {"view": None, "request": None}) is None


def test_a_401_is_logged_at_debug_level_not_as_a_warning(client, db, caplog):
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        response = client.get("/api/v1/echo", HTTP_X_API_KEY="tk_live_nonsense")
    assert response.status_code == 401
    logged = [record for record in caplog.records if record.name == "django.request"]
    assert [(record.levelno, record.getMessage()) for record in logged] == [
        (logging.DEBUG, "Unauthorized: /api/v1/echo")
    ]


def test_other_client_errors_are_still_warnings(client, db, caplog):
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        client.get("/api/v1/nope")
    assert [record.levelno for record in caplog.records if record.name == "django.request"] == [
        logging.WARNING
    ]
