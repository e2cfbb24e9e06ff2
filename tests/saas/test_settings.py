"""saas/settings.py read in a fresh interpreter, from an environment built
from nothing: what a deployment gets from the variables it sets, and only them."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

SECRET = "s" * 25 + "t" * 25
PEPPER = "p" * 25 + "q" * 25
SETUP = "import django; django.setup(); from django.conf import settings"


def _run(code, **env):
    """Run `code` with saas.settings and only PATH and `env` in the environment."""
    environment = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "saas.settings"}
    environment.update({name: value for name, value in env.items() if value is not None})
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _setting(name, **env):
    result = _run(f"{SETUP}; print(repr(settings.{name}))", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _production(**env):
    """The smallest environment a deployment starts with: DEBUG unset, its secrets."""
    return {"SECRET_KEY": SECRET, "API_KEY_PEPPER": PEPPER, **env}


def test_debug_is_off_when_unset():
    assert _setting("DEBUG", **_production()) == "False"


def test_debug_is_on_only_when_asked_for():
    assert _setting("DEBUG", DEBUG="true") == "True"


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_unset():
    result = _run(SETUP, API_KEY_PEPPER=PEPPER)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr
    assert "DEBUG=true" in result.stderr  # how a developer gets the embedded default


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = _run(SETUP, DEBUG="false", API_KEY_PEPPER=PEPPER)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr


def test_it_starts_with_its_secrets_when_debug_is_off():
    result = _run(f"{SETUP}; print('started')", **_production(DEBUG="false"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_it_starts_without_any_secret_when_debug_is_on():
    result = _run(SETUP, DEBUG="true")
    assert result.returncode == 0, result.stderr


def test_it_refuses_to_start_without_an_api_key_pepper_when_debug_is_off():
    result = _run(SETUP, SECRET_KEY=SECRET)
    assert result.returncode != 0
    assert "ImproperlyConfigured: API_KEY_PEPPER is not set" in result.stderr


def test_the_pepper_is_its_own_setting_not_the_secret_key():
    assert _setting("API_KEY_PEPPER", **_production()) == repr(PEPPER)


def test_with_debug_on_the_pepper_falls_back_to_the_secret_key():
    assert _setting("API_KEY_PEPPER", DEBUG="true", SECRET_KEY=SECRET) == repr(SECRET)


def test_the_current_pepper_is_version_1_unless_set():
    assert _setting("API_KEY_PEPPER_VERSION", **_production()) == "1"
    assert _setting("API_KEY_OLD_PEPPERS", **_production()) == "{}"


def test_older_peppers_are_read_by_version():
    env = _production(API_KEY_PEPPER_VERSION="3", API_KEY_OLD_PEPPERS="2=second,1=first")
    assert _setting("API_KEY_PEPPER_VERSION", **env) == "3"
    assert _setting("API_KEY_OLD_PEPPERS", **env) == repr({2: "second", 1: "first"})


@pytest.mark.parametrize(
    "changes",
    [
        {"API_KEY_PEPPER_VERSION": "0"},
        {"API_KEY_PEPPER_VERSION": "two"},
        {"API_KEY_OLD_PEPPERS": "x=old"},
        {"API_KEY_OLD_PEPPERS": "1="},
        {"API_KEY_PEPPER_VERSION": "2", "API_KEY_OLD_PEPPERS": "2=old"},
    ],
    ids=["version-0", "version-nan", "old-version-nan", "old-pepper-empty", "version-twice"],
)
def test_a_bad_pepper_configuration_refuses_to_start(changes):
    result = _run(SETUP, **_production(**changes))
    assert result.returncode != 0
    assert "ImproperlyConfigured: API_KEY_" in result.stderr


HTTPS_SETTINGS = [
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
]


def _https_settings(**env):
    names = ", ".join(f"settings.{name}" for name in HTTPS_SETTINGS)
    result = _run(f"{SETUP}; print(repr(({names})))", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_with_debug_off_https_is_required_by_default():
    assert _https_settings(**_production()) == repr((True, 31_536_000, True, True, True, True, None))


def test_with_debug_on_plain_http_works_by_default():
    assert _https_settings(DEBUG="true") == repr((False, 0, False, False, False, False, None))


def test_each_https_setting_comes_from_the_environment():
    env = _production(
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        SECURE_HSTS_PRELOAD="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )
    expected = (False, 3600, False, False, False, False, ("HTTP_X_FORWARDED_PROTO", "https"))
    assert _https_settings(**env) == repr(expected)


def test_the_proxy_ssl_header_may_name_its_value():
    env = _production(SECURE_PROXY_SSL_HEADER="X-Forwarded-Ssl=on")
    assert _setting("SECURE_PROXY_SSL_HEADER", **env) == repr(("HTTP_X_FORWARDED_SSL", "on"))


def test_behind_trusted_proxies_the_proxy_ssl_header_defaults_to_x_forwarded_proto():
    env = _production(TRUSTED_PROXY_COUNT="1")
    assert _setting("SECURE_PROXY_SSL_HEADER", **env) == repr(("HTTP_X_FORWARDED_PROTO", "https"))


def test_an_empty_proxy_ssl_header_turns_it_off_behind_proxies():
    env = _production(TRUSTED_PROXY_COUNT="1", SECURE_PROXY_SSL_HEADER="")
    assert _setting("SECURE_PROXY_SSL_HEADER", **env) == "None"


def test_celery_runs_tasks_eagerly_without_a_broker():
    code = f"{SETUP}; from saas.celery import app; print(app.conf.task_always_eager)"
    result = _run(code, **_production())
    assert result.stdout.strip() == "True", result.stderr


def test_celery_queues_tasks_with_a_broker():
    code = f"{SETUP}; from saas.celery import app; print(app.conf.task_always_eager)"
    result = _run(code, **_production(CELERY_BROKER_URL="redis://127.0.0.1:6379/14"))
    assert result.stdout.strip() == "False", result.stderr


def test_it_uses_sqlite_without_a_database_url():
    assert _setting("DATABASES['default']['ENGINE']", **_production()) == "'django.db.backends.sqlite3'"


def test_it_uses_an_in_process_cache_without_a_redis_url():
    expected = "'django.core.cache.backends.locmem.LocMemCache'"
    assert _setting("CACHES['default']['BACKEND']", **_production()) == expected


def test_it_uses_redis_with_a_redis_url():
    env = _production(REDIS_URL="redis://127.0.0.1:6379/14")
    assert _setting("CACHES['default']['BACKEND']", **env) == "'django_redis.cache.RedisCache'"


def test_redis_cluster_puts_the_cache_on_the_cluster_connection_factory():
    env = _production(REDIS_URL="redis://10.0.0.7:7000", REDIS_CLUSTER="true")
    expected = "'core.redis_cluster.ClusterConnectionFactory'"
    assert _setting("CACHES['default']['OPTIONS']['CONNECTION_FACTORY']", **env) == expected


def test_a_single_redis_keeps_django_redis_own_connection_factory():
    env = _production(REDIS_URL="redis://127.0.0.1:6379/14")
    assert _setting("CACHES['default']['OPTIONS'].get('CONNECTION_FACTORY')", **env) == "None"


def test_redis_cluster_without_a_redis_url_refuses_to_start():
    result = _run(SETUP, **_production(REDIS_CLUSTER="true"))
    assert result.returncode != 0
    assert "ImproperlyConfigured: REDIS_CLUSTER=true needs REDIS_URL" in result.stderr


def test_redis_cluster_with_a_database_other_than_0_refuses_to_start():
    result = _run(SETUP, **_production(REDIS_URL="redis://10.0.0.7:7000/8", REDIS_CLUSTER="true"))
    assert result.returncode != 0
    assert "ImproperlyConfigured: A Redis Cluster has only database 0" in result.stderr


def test_redis_sentinels_put_the_cache_on_django_redis_sentinel_factory():
    env = _production(REDIS_URL="redis://mymaster/0", REDIS_SENTINELS="10.0.0.7:26379,10.0.0.8:26379")
    options = "CACHES['default']['OPTIONS']"
    factory = "'django_redis.pool.SentinelConnectionFactory'"
    assert _setting(f"{options}['CONNECTION_FACTORY']", **env) == factory
    assert _setting(f"{options}['SENTINELS']", **env) == "[('10.0.0.7', 26379), ('10.0.0.8', 26379)]"


def test_a_redis_sentinel_without_a_port_refuses_to_start():
    result = _run(SETUP, **_production(REDIS_URL="redis://mymaster/0", REDIS_SENTINELS="10.0.0.7"))
    assert result.returncode != 0
    assert "ImproperlyConfigured: REDIS_SENTINELS: '10.0.0.7' is not host:port." in result.stderr


@pytest.mark.parametrize("cluster", ["", "true"])
def test_redis_sentinels_without_a_master_name_or_with_a_cluster_refuse_to_start(cluster):
    env = _production(REDIS_SENTINELS="10.0.0.7:26379", REDIS_CLUSTER=cluster or "false")
    if cluster:
        env["REDIS_URL"] = "redis://mymaster/0"
    result = _run(SETUP, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: REDIS_SENTINELS needs REDIS_URL naming the master" in result.stderr


@pytest.mark.parametrize("name", ["SECRET_KEY", "API_KEY_PEPPER"])
def test_a_secret_left_as_readmes_placeholder_refuses_to_start(name):
    result = _run(SETUP, **_production(**{name: "<50+ random characters>"}))
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name} still holds a placeholder" in result.stderr


POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/saas"
PRINT_TIMEOUTS = (
    f"{SETUP}; from django.conf import settings; database = settings.DATABASES['default']; "
    "options = database['OPTIONS']; "
    "print(database['ENGINE'], options['connect_timeout'], options['statement_timeout'])"
)


def test_web_processes_get_short_postgresql_timeouts():
    result = _run(PRINT_TIMEOUTS, **_production(DATABASE_URL=POSTGRES_URL, DATABASE_TIMEOUTS=None))
    assert result.stdout.split() == ["saas.postgresql", "2", "3.0"], result.stderr


def test_tasks_and_commands_get_long_postgresql_timeouts():
    result = _run(PRINT_TIMEOUTS, **_production(DATABASE_URL=POSTGRES_URL, DATABASE_TIMEOUTS="task"))
    assert result.stdout.split() == ["saas.postgresql", "10", "300.0"], result.stderr


def test_postgresql_timeouts_come_from_the_environment():
    result = _run(
        PRINT_TIMEOUTS,
        **_production(
            DATABASE_URL=POSTGRES_URL,
            DATABASE_TIMEOUTS=None,
            DATABASE_CONNECT_TIMEOUT_SECONDS="4",
            DATABASE_STATEMENT_TIMEOUT_SECONDS="7.5",
            DATABASE_TASK_STATEMENT_TIMEOUT_SECONDS="900",
        ),
    )
    assert result.stdout.split() == ["saas.postgresql", "4", "7.5"], result.stderr


def test_an_unknown_kind_of_postgresql_timeouts_refuses_to_start():
    result = _run(SETUP, **_production(DATABASE_URL=POSTGRES_URL, DATABASE_TIMEOUTS="batch"))
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
