"""The test suite's settings: the project's own as deployed (DEBUG off), with
the few changes a test run needs.

- Secrets of its own, set in the environment before the project's settings
  read it (they refuse to start without them); child processes started by
  tests (manage.py, Celery workers, gunicorn) inherit DJANGO_SETTINGS_MODULE
  and the environment and get the same.
- Plain HTTP: the test client, the live server of the browser tests and the
  gunicorn of the process tests serve 127.0.0.1 with no TLS in front, so no
  redirect to HTTPS and no HTTPS-only cookies. tests/saas/test_settings.py and
  test_deploy_check.py check the deployed defaults.
- A fast password hasher: production's PBKDF2 is slow on purpose (hundreds of
  milliseconds per login or new user); the tests make hundreds of users and
  prove nothing about the hash, so they use MD5.

Nothing else changes here: the real PostgreSQL, Redis and Celery settings are
what the tests run on.
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-never-deployed-" + "k" * 20)
os.environ.setdefault("API_KEY_PEPPER", "tests-only-api-key-pepper-never-deployed")

from saas.settings import *  # noqa: E402, F403

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
