"""The app through pgbouncer in transaction mode, as a deployment on many web
nodes runs it: gunicorn (DEBUG off) and the usage flush, on the test database,
with DATABASE_TRANSACTION_POOLING=true. pgbouncer is Debian's (`make test`
installs it); it runs as `nobody` on a free port and is stopped by the test.
"""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Sum

from metering.models import UsageRecord
from plans.models import Customer
from tests.faults.server import fetch, free_port, gunicorn, server_environment
from tests.utils import stop

pytestmark = pytest.mark.django_db(transaction=True)

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
ECHO = "/api/v1/echo"


@pytest.fixture
def pgbouncer():
    """postgres://... through a pgbouncer in transaction mode in front of the test database."""
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is not installed: run 'make test', which installs it")
    # pgbouncer refuses to run as root and becomes `nobody`, who must reach its
    # files: not under pytest's tmp_path (its parent is private to root).
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as directory:
        path = Path(directory)
        path.chmod(0o777)
        yield from _pgbouncer(path)


def _pgbouncer(tmp_path: Path):
    database = settings.DATABASES["default"]
    port = free_port()
    (tmp_path / "users.txt").write_text(f'"{database["USER"]}" ""\n')
    (tmp_path / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={database['HOST'] or '127.0.0.1'} port={database['PORT'] or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {tmp_path / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 100\n"
        f"logfile = {tmp_path / 'pgbouncer.log'}\n"
    )
    process = subprocess.Popen(
        [PGBOUNCER, "-u", "nobody", str(tmp_path / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while (tmp_path / "pgbouncer.log").exists() is False or "listening on" not in (
            tmp_path / "pgbouncer.log"
        ).read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pgbouncer did not start: {(tmp_path / 'pgbouncer.log').read_text()}")
            time.sleep(0.05)
        yield f"postgres://{database['USER']}@127.0.0.1:{port}/{database['NAME']}"
    finally:
        stop(process)


def flush_through(database_url: str) -> None:
    env = {**server_environment(DATABASE_URL=database_url, DATABASE_TRANSACTION_POOLING="true")}
    result = subprocess.run(
        [str(Path(settings.BASE_DIR, ".venv/bin/python")), "manage.py", "flush_usage"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_api_pages_and_the_flush_work_through_pgbouncer_in_transaction_mode(
    pgbouncer, tmp_path, api_key, customer, default_tiers
):
    Customer.objects.filter(pk=customer.pk).update(burst_override=100)
    headers = {"Authorization": f"Bearer {api_key.raw_key}"}
    environment = {"DATABASE_URL": pgbouncer, "DATABASE_TRANSACTION_POOLING": "true"}
    with gunicorn(tmp_path / "gunicorn.log", workers=2, threads=4, **environment) as site:
        # More than psycopg's 5 runs of a query before it would prepare it.
        served = [fetch(site + ECHO, headers=headers).status for _ in range(12)]
        assert served == [200] * 12
        assert fetch(site + "/api/v1/usage", headers=headers).status == 200
        assert [fetch(site + "/pricing/").status for _ in range(8)] == [200] * 8
        assert fetch(site + "/healthz").status == 200
    flush_through(pgbouncer)
    assert UsageRecord.objects.filter(customer=customer).aggregate(total=Sum("count"))["total"] == 12
