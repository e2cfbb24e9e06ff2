"""What to do once `make run` serves: printed once, before runserver's own banner."""

from django.conf import settings
from django.core.management.base import BaseCommand

CONSOLE_EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"


class Command(BaseCommand):
    help = "Print where the development server answers and what to do first."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        url = f"http://{host}:{port}"
        if settings.EMAIL_BACKEND == CONSOLE_EMAIL_BACKEND:
            emails = "the confirmation email is printed in this terminal: open its link"
        else:
            emails = f"the confirmation email is sent by {settings.EMAIL_BACKEND}"
        self.stdout.write(
            "\n".join(
                [
                    f"Tiered API is starting at {url}/",
                    f"  1. Sign up at {url}/accounts/signup/ ({emails}).",
                    "  2. Create an API key on the dashboard and call the API with it:",
                    f"     API docs at {url}/api/docs/",
                    "  3. For an admin, in another terminal:",
                    "     DEBUG=true .venv/bin/python manage.py createsuperuser",
                    f"     then {url}/admin/ (the operator dashboard is {url}/admin/dashboard/)",
                    "",
                ]
            )
        )
