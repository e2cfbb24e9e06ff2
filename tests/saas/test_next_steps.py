"""`make run` says what to do next before the development server starts."""

import subprocess
from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.test import override_settings


def next_steps(*args: str) -> str:
    out = StringIO()
    call_command("next_steps", *args, stdout=out)
    return out.getvalue()


def test_make_run_prints_the_next_steps_once_before_runserver_starts():
    recipe = subprocess.run(
        ["make", "--dry-run", "--always-make", "run", "PORT=8123"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    steps = [line for line in recipe if "manage.py next_steps" in line]
    runserver = [index for index, line in enumerate(recipe) if "manage.py runserver" in line]
    assert len(steps) == 1
    assert "8123" in steps[0]
    assert recipe.index(steps[0]) < runserver[0]


def test_the_next_steps_give_the_url_to_open_and_sign_up_at():
    output = next_steps("--port", "8123")
    assert "http://127.0.0.1:8123/" in output
    assert "http://127.0.0.1:8123/accounts/signup/" in output


@override_settings(EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend")
def test_the_next_steps_say_the_emails_are_printed_in_this_terminal():
    assert "printed in this terminal" in next_steps()


@override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend")
def test_with_another_email_backend_they_do_not_promise_the_terminal():
    assert "printed in this terminal" not in next_steps()


def test_the_next_steps_say_how_to_make_an_admin_and_where_admin_and_docs_are():
    output = next_steps("--port", "8123")
    assert "manage.py createsuperuser" in output
    assert "http://127.0.0.1:8123/admin/" in output
    assert "http://127.0.0.1:8123/api/docs/" in output
