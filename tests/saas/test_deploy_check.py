"""`manage.py check --deploy` with the production environment docs/deployment.md
documents: the sample a deployment copies passes Django's deployment checks
and ours, with no warning."""

import os
import re
import secrets
import subprocess
import sys

import pytest
from django.conf import settings

from tests.metering.test_limiter_redis_faults import RedisServer

SAMPLE_START = "# production.env"
PLACEHOLDER = re.compile(r"^<.*>$")


def documented_environment() -> dict[str, str]:
    """The variables of the documented production sample; each `<placeholder>` gets a fresh random value."""
    guide = (settings.BASE_DIR / "docs" / "deployment.md").read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", guide, flags=re.DOTALL)
    sample = next(block for block in blocks if block.startswith(SAMPLE_START))
    environment = {}
    for line in sample.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, value = line.split("=", 1)
        environment[name] = secrets.token_urlsafe(50) if PLACEHOLDER.match(value) else value
    return environment


@pytest.fixture
def persistent_redis(tmp_path):
    """A private redis-server with AOF, as docs/deployment.md asks production's to be."""
    server = RedisServer(tmp_path, persistence=("--appendonly", "yes", "--appendfsync", "everysec"))
    server.start()
    yield server
    server.kill()


def test_readme_documents_a_production_environment_with_debug_off_and_its_secrets():
    documented = documented_environment()
    assert documented["DEBUG"] == "false"
    assert {"SECRET_KEY", "API_KEY_PEPPER", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"} <= set(documented)


def test_check_deploy_passes_with_the_documented_environment(persistent_redis, db):
    database = settings.DATABASES["default"]
    environment = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "saas.settings",
        **documented_environment(),
        # The sample's services stand for ours: the test database and an AOF Redis.
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{persistent_redis.port}/0",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
