import os
import subprocess
import sys

from django.conf import settings


def _run(code, **env_changes):
    """Run `code` in a fresh interpreter with production-like environment."""
    env = dict(os.environ)
    env.pop("SECRET_KEY", None)
    env.update(DEBUG="false", DJANGO_SETTINGS_MODULE="saas.settings")
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


SETUP = "import django; django.setup()"


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = _run(SETUP)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_it_starts_with_a_secret_key_when_debug_is_off():
    result = _run(f"{SETUP}; print('started')", SECRET_KEY="s" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_it_starts_without_a_secret_key_when_debug_is_on():
    result = _run(SETUP, DEBUG="true")
    assert result.returncode == 0, result.stderr


def test_celery_runs_tasks_eagerly_without_a_broker():
    code = f"{SETUP}; from saas.celery import app; print(app.conf.task_always_eager)"
    result = _run(code, SECRET_KEY="s" * 50, CELERY_BROKER_URL=None)
    assert result.stdout.strip() == "True", result.stderr


def test_celery_queues_tasks_with_a_broker():
    code = f"{SETUP}; from saas.celery import app; print(app.conf.task_always_eager)"
    result = _run(code, SECRET_KEY="s" * 50, CELERY_BROKER_URL="redis://127.0.0.1:6379/14")
    assert result.stdout.strip() == "False", result.stderr


def test_it_uses_sqlite_without_a_database_url():
    code = f"{SETUP}; from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    result = _run(code, SECRET_KEY="s" * 50, DATABASE_URL=None)
    assert result.stdout.strip() == "django.db.backends.sqlite3", result.stderr


def test_it_uses_an_in_process_cache_without_a_redis_url():
    code = f"{SETUP}; from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    result = _run(code, SECRET_KEY="s" * 50, REDIS_URL=None)
    assert result.stdout.strip() == "django.core.cache.backends.locmem.LocMemCache", result.stderr


def test_it_uses_redis_with_a_redis_url():
    code = f"{SETUP}; from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    result = _run(code, SECRET_KEY="s" * 50, REDIS_URL="redis://127.0.0.1:6379/14")
    assert result.stdout.strip() == "django_redis.cache.RedisCache", result.stderr
