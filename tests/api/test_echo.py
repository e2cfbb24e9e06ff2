import pytest

ECHO = "/api/v1/echo"


def test_it_returns_the_query_parameters(key_client):
    response = key_client.get(ECHO, {"msg": "hi", "n": "1"})
    assert response.status_code == 200
    assert response.json() == {"query": {"msg": "hi", "n": "1"}}


def test_it_returns_a_repeated_parameter_as_a_list(key_client):
    response = key_client.get(f"{ECHO}?tag=a&tag=b&one=x")
    assert response.json() == {"query": {"tag": ["a", "b"], "one": "x"}}


def test_it_returns_an_empty_query_without_parameters(key_client):
    response = key_client.get(ECHO)
    assert response.status_code == 200
    assert response.json() == {"query": {}}


def test_it_rejects_a_value_over_1000_characters(key_client):
    response = key_client.get(ECHO, {"msg": "x" * 1001})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "parameter_too_long"
    assert "msg" in body["detail"]


def test_it_rejects_a_parameter_name_over_1000_characters(key_client):
    response = key_client.get(ECHO, {"n" * 1001: "short"})
    assert response.status_code == 400
    assert response.json()["error"] == "parameter_too_long"


def test_it_rejects_one_long_value_among_repeated_short_ones(key_client):
    response = key_client.get(f"{ECHO}?tag=a&tag={'x' * 1001}")
    assert response.status_code == 400


@pytest.mark.parametrize("field", ["name", "value"])
def test_it_accepts_exactly_1000_characters(key_client, field):
    name, value = ("n" * 1000, "v") if field == "name" else ("msg", "v" * 1000)
    response = key_client.get(ECHO, {name: value})
    assert response.status_code == 200
    assert response.json() == {"query": {name: value}}


def test_it_accepts_the_key_in_an_x_api_key_header(api_client, api_key):
    response = api_client.get(ECHO, {"msg": "hi"}, HTTP_X_API_KEY=api_key.raw_key)
    assert response.status_code == 200
    assert response.json() == {"query": {"msg": "hi"}}


def test_it_refuses_post_with_a_json_405(key_client):
    response = key_client.post(ECHO, {"msg": "hi"}, format="json")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "method_not_allowed"


def test_an_unsupported_method_is_a_405_before_any_idempotency_key_is_claimed(key_client):
    key_client.get("/api/v1/echo", headers={"Idempotency-Key": "k1"})
    response = key_client.generic("TRACE", "/api/v1/echo", headers={"Idempotency-Key": "k1"})
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_an_unsupported_method_is_a_405_without_a_key(api_client, db):
    assert api_client.post("/api/v1/echo").status_code == 405
