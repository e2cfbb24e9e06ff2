from django.apps import AppConfig
from django.core import checks


class MeteringConfig(AppConfig):
    name = "metering"

    def ready(self):
        # Imported here, as Django asks: the check module reads settings and Redis.
        from .checks import redis_persistence

        checks.register(redis_persistence, "redis")
