"""The test suite's settings: the project's own, with a fast password hasher.

Production's PBKDF2 is slow on purpose (hundreds of milliseconds per login or
new user); the tests make hundreds of users and prove nothing about the hash,
so they use MD5. Child processes started by tests (manage.py, Celery workers)
inherit DJANGO_SETTINGS_MODULE and get the same. Nothing else changes here:
the real PostgreSQL, Redis and Celery settings are what the tests run on.
"""

from saas.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
