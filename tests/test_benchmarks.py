"""The benchmarks' own servers load: a broken import there shows up here, not
in the middle of a benchmark run."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

UNENFORCED_ROUND_TRIP_SERVER = """
import benchmarks.round_trip_wsgi
from django.conf import settings
assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] == []
"""


def test_the_unenforced_round_trip_server_of_bench_http_loads_without_throttles():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "benchmarks.settings", "BENCH_ENFORCEMENT": "off"}
    command = [sys.executable, "-c", UNENFORCED_ROUND_TRIP_SERVER]
    result = subprocess.run(
        command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_key_rejection_benchmarks_malformed_keys_fail_only_their_checksum():
    from apikeys.keys import generate_key, is_well_formed
    from benchmarks.key_rejection import PREFIX, wrong_checksum

    key = generate_key(PREFIX)
    malformed = wrong_checksum(key)
    assert len(malformed) == len(key) and malformed[:-1] == key[:-1]
    assert not is_well_formed(malformed, PREFIX)


@pytest.mark.django_db(transaction=True)  # the benchmark commits (and deletes) its rows: emptied after
def test_the_flush_benchmark_moves_every_unit_of_a_small_run():
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "BENCH_REDIS_URL": settings.REDIS_URL,
        "BENCH_CUSTOMERS": "30",
    }
    command = [sys.executable, "benchmarks/flush.py"]
    result = subprocess.run(
        command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "flush: 30 customers (150 units) moved" in result.stdout
    assert "ledger exact" in result.stdout
