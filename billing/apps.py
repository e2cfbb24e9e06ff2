from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self):
        # Registers the tasks that billing.queueing names, in every process
        # (the web's included: Celery discovers task modules only in workers).
        from . import tasks  # noqa: F401
