def test_echo_answers_a_valid_key(key_client):
    response = key_client.get("/api/v1/echo", {"msg": "hi"})
    assert response.status_code == 200
    assert response.json() == {"query": {"msg": "hi"}}
