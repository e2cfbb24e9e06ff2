import pytest

IDEMPOTENCY_KEY = ("Idempotency-Key", "header")


@pytest.fixture
def schema(client, db):
    return client.get("/api/schema/", {"format": "json"}).json()


def parameters(operation) -> set:
    return {(parameter["name"], parameter["in"]) for parameter in operation.get("parameters", [])}


@pytest.mark.parametrize("path", ["/api/v1/echo", "/api/v1/primes", "/api/v1/timezones"])
def test_a_billable_operation_declares_the_idempotency_key_header(schema, path):
    assert IDEMPOTENCY_KEY in parameters(schema["paths"][path]["get"])


@pytest.mark.parametrize(
    ("code", "error"), [("409", "idempotency_key_in_use"), ("422", "idempotency_key_reused")]
)
def test_a_billable_operation_declares_the_idempotency_refusals(schema, code, error):
    response = schema["paths"]["/api/v1/echo"]["get"]["responses"][code]
    assert error in response["description"]
    body = response["content"]["application/json"]["schema"]
    assert schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["required"] == ["error", "detail"]


def test_the_usage_api_which_is_never_billed_has_no_idempotency_key(schema):
    operation = schema["paths"]["/api/v1/usage"]["get"]
    assert IDEMPOTENCY_KEY not in parameters(operation)
    assert "422" not in operation["responses"]
