from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self):
        from . import schema  # noqa: F401  registers the OpenAPI security scheme
