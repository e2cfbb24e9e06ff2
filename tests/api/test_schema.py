"""The OpenAPI schema documents every operation as a client needs it: a
readable id, a summary, a tag, and each error it can answer with its body."""

import pytest

from apikeys.context import customer_key_contexts, invalidate_key_contexts
from plans.models import Customer

OPERATIONS = {
    "/api/v1/echo": "echo",
    "/api/v1/primes": "primes",
    "/api/v1/timezones": "timezones",
    "/api/v1/usage": "usage",
}
PRODUCT_PATHS = ["/api/v1/echo", "/api/v1/primes", "/api/v1/timezones"]
ERROR_REF = "#/components/schemas/Error"


@pytest.fixture
def schema(client, db):
    return client.get("/api/schema/", {"format": "json"}).json()


def operation(schema, path):
    return schema["paths"][path]["get"]


def test_each_operation_has_a_readable_id(schema):
    ids = {path: operation(schema, path)["operationId"] for path in OPERATIONS}
    assert ids == OPERATIONS


@pytest.mark.parametrize("path", OPERATIONS)
def test_each_operation_has_a_summary_a_description_and_a_declared_tag(schema, path):
    declared = {tag["name"] for tag in schema["tags"]}
    documented = operation(schema, path)
    assert documented["summary"]
    assert documented["description"]
    assert documented["tags"] and set(documented["tags"]) <= declared


def test_the_error_body_is_one_component_with_its_code_and_detail(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "detail"]
    assert {"error", "detail", "fields", "retry_after", "billing_url"} <= set(error["properties"])


@pytest.mark.parametrize("path", OPERATIONS)
@pytest.mark.parametrize("status", ["401", "402", "403", "406", "429", "503"])
def test_every_operation_documents_the_refusals_of_keys_billing_limits_and_outages(schema, path, status):
    response = operation(schema, path)["responses"][status]
    assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}


@pytest.mark.parametrize("path", PRODUCT_PATHS)
@pytest.mark.parametrize("status", ["400", "409", "422"])
def test_a_billable_operation_documents_its_bad_request_and_idempotency_refusals(schema, path, status):
    response = operation(schema, path)["responses"][status]
    assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}


@pytest.mark.parametrize(
    ("status", "codes"),
    [
        ("400", ["invalid", "idempotency_key_invalid"]),
        ("401", ["missing_key", "malformed_key", "unknown_key", "revoked_key", "expired_key"]),
        ("402", ["payment_required"]),
        ("403", ["insufficient_scope"]),
        ("409", ["idempotency_key_in_use", "idempotency_response_not_stored"]),
        ("422", ["idempotency_key_reused"]),
        (
            "429",
            [
                "burst_limit_exceeded",
                "quota_exceeded",
                "spending_cap_reached",
                "too_many_failed_authentications",
            ],
        ),
        ("503", ["rate_limiter_unavailable", "database_unavailable", "redis_unavailable"]),
    ],
)
def test_each_error_response_names_every_code_it_can_carry(schema, status, codes):
    description = operation(schema, "/api/v1/primes")["responses"][status]["description"]
    assert [code for code in codes if f"`{code}`" not in description] == []


def test_the_echo_documents_its_parameter_too_long_error(schema):
    assert "`parameter_too_long`" in operation(schema, "/api/v1/echo")["responses"]["400"]["description"]


def test_the_usage_api_which_is_never_billed_documents_no_quota_or_idempotency_refusal(schema):
    responses = operation(schema, "/api/v1/usage")["responses"]
    assert "409" not in responses
    assert "422" not in responses
    assert "`quota_exceeded`" not in responses["429"]["description"]
    assert "`burst_limit_exceeded`" in responses["429"]["description"]


@pytest.mark.parametrize(("status", "header"), [("429", "Retry-After"), ("503", "Retry-After")])
def test_a_refusal_to_retry_later_requires_its_retry_after_header(schema, status, header):
    headers = operation(schema, "/api/v1/echo")["responses"][status]["headers"]
    assert headers[header]["required"] is True


def test_a_401_requires_its_www_authenticate_header(schema):
    headers = operation(schema, "/api/v1/echo")["responses"]["401"]["headers"]
    assert headers["WWW-Authenticate"]["required"] is True


@pytest.mark.parametrize("status", ["200", "429"])
@pytest.mark.parametrize("header", ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"])
def test_the_rate_limit_headers_are_documented_on_answers_and_limit_refusals(schema, status, header):
    assert header in operation(schema, "/api/v1/echo")["responses"][status]["headers"]


def test_a_replayed_answer_documents_its_header(schema):
    assert "Idempotent-Replayed" in operation(schema, "/api/v1/echo")["responses"]["200"]["headers"]


def test_the_schema_is_the_same_each_time_it_is_served(client, db):
    # drf-spectacular's hooks rewrite what they are given: a shared schema
    # once lost its `window` enum component on the second request.
    first = client.get("/api/schema/", {"format": "json"}).json()
    assert client.get("/api/schema/", {"format": "json"}).json() == first
    assert "WindowEnum" in first["components"]["schemas"]


def test_the_too_long_url_of_the_http_server_in_front_is_documented(schema):
    assert "414" in operation(schema, "/api/v1/echo")["responses"]


def test_every_field_of_a_real_quota_refusal_is_documented_in_the_error_body(
    schema, key_client, customer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        Customer.objects.filter(pk=customer.pk).update(quota_override=1, burst_override=100)
        invalidate_key_contexts(customer_key_contexts([customer.pk]))
    key_client.get("/api/v1/echo")
    refused = key_client.get("/api/v1/echo")
    assert refused.status_code == 429
    assert "upgrade_url" in refused.json()  # the free tier: a higher one exists
    assert set(refused.json()) <= set(schema["components"]["schemas"]["Error"]["properties"])
