"""`make run`'s embedded default on a fresh machine: every migration applies to
SQLite (no PostgreSQL-only operation breaks it) and the tiers load."""

import os
import subprocess
import sys

from django.conf import settings


def manage_on_sqlite(database, *args: str) -> subprocess.CompletedProcess:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "REDIS_", "CELERY_", "DJANGO_SETTINGS_MODULE"))
    }
    env.update(DEBUG="true", DATABASE_URL=f"sqlite:///{database}")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_fresh_sqlite_database_migrates_and_loads_the_tiers(tmp_path):
    database = tmp_path / "db.sqlite3"
    migrated = manage_on_sqlite(database, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    synced = manage_on_sqlite(database, "sync_tiers")
    assert synced.returncode == 0, synced.stderr
