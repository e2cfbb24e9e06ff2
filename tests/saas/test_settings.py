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


POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/saas"
PRINT_TIMEOUTS = (
    f"{SETUP}; from django.conf import settings; database = settings.DATABASES['default']; "
    "options = database['OPTIONS']; "
    "print(database['ENGINE'], options['connect_timeout'], options['statement_timeout'])"
)


def test_web_processes_get_short_postgresql_timeouts():
    result = _run(PRINT_TIMEOUTS, SECRET_KEY="s" * 50, DATABASE_URL=POSTGRES_URL, DATABASE_TIMEOUTS=None)
    assert result.stdout.split() == ["saas.postgresql", "2", "3.0"], result.stderr


def test_tasks_and_commands_get_long_postgresql_timeouts():
    result = _run(PRINT_TIMEOUTS, SECRET_KEY="s" * 50, DATABASE_URL=POSTGRES_URL, DATABASE_TIMEOUTS="task")
    assert result.stdout.split() == ["saas.postgresql", "10", "300.0"], result.stderr


def test_postgresql_timeouts_come_from_the_environment():
    result = _run(
        PRINT_TIMEOUTS,
        SECRET_KEY="s" * 50,
        DATABASE_URL=POSTGRES_URL,
        DATABASE_TIMEOUTS=None,
        DATABASE_CONNECT_TIMEOUT_SECONDS="4",
        DATABASE_STATEMENT_TIMEOUT_SECONDS="7.5",
        DATABASE_TASK_STATEMENT_TIMEOUT_SECONDS="900",
    )
    assert result.stdout.split() == ["saas.postgresql", "4", "7.5"], result.stderr


def test_an_unknown_kind_of_postgresql_timeouts_refuses_to_start():
    result = _run(SETUP, SECRET_KEY="s" * 50, DATABASE_URL=POSTGRES_URL, DATABASE_TIMEOUTS="batch")
    assert result.returncode != 0
    assert "DATABASE_TIMEOUTS" in result.stderr


def test_management_commands_get_the_task_timeouts():
    code = "from django.conf import settings; print(settings.DATABASE_STATEMENT_TIMEOUT_SECONDS)"
    env = {**os.environ, "DATABASE_URL": POSTGRES_URL}
    env.pop("DATABASE_TIMEOUTS", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "300.0", result.stderr
