"""Helpers shared by tests that are not fixtures."""

import os
import subprocess
import sys

from django.conf import settings


def manage_py(*args: str) -> "subprocess.CompletedProcess[str]":
    """Run manage.py in a child process against the test database."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stop(process: "subprocess.Popen") -> None:
    """Terminate a child process, killing it if it does not stop in 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)
