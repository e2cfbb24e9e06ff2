from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Product API"

    def ready(self):
        # Registers the schema extensions (drf-spectacular finds them by subclassing).
        from . import schema  # noqa: F401
