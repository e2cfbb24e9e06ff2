import pytest

from api.primes import primes_below

PRIMES = "/api/v1/primes"


def _is_prime(number):
    return number >= 2 and all(number % divisor for divisor in range(2, number))


def test_it_counts_the_primes_below_100(key_client):
    response = key_client.get(PRIMES, {"below": 100})
    assert response.status_code == 200
    assert response.json() == {
        "below": 100,
        "count": 25,
        "largest": 97,
        "last": [53, 59, 61, 67, 71, 73, 79, 83, 89, 97],
    }


def test_it_finds_no_prime_below_2(key_client):
    body = key_client.get(PRIMES, {"below": 2}).json()
    assert body["count"] == 0
    assert body["largest"] is None
    assert body["last"] == []


def test_it_counts_below_100000_by_default(key_client):
    body = key_client.get(PRIMES).json()
    assert body["below"] == 100_000
    assert body["count"] == 9592


def test_it_accepts_the_largest_bound(key_client):
    body = key_client.get(PRIMES, {"below": 2_000_000}).json()
    assert body["count"] == 148_933


@pytest.mark.parametrize("below", ["abc", "1", "2000001", "-5", "2.5"])
def test_it_rejects_an_invalid_bound(key_client, below):
    response = key_client.get(PRIMES, {"below": below})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert body["detail"].startswith("below:")
    assert "below" in body["fields"]


def test_primes_below_matches_a_naive_check_for_small_bounds():
    bounds = range(200)
    expected = {bound: [n for n in range(bound) if _is_prime(n)] for bound in bounds}
    assert {bound: primes_below(bound) for bound in bounds} == expected


def test_primes_below_excludes_the_bound_itself():
    assert primes_below(97)[-1] == 89
    assert primes_below(98)[-1] == 97


def test_an_empty_bound_is_refused_rather_than_taken_as_the_default(key_client):
    response = key_client.get(PRIMES + "?below=")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_an_unknown_parameter_is_refused_rather_than_ignored(key_client):
    response = key_client.get(PRIMES, {"below": 10, "above": 5})
    assert response.status_code == 400
    assert response.json()["detail"] == "above: Unknown query parameter."
