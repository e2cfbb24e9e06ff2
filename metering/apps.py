from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import pre_delete


class MeteringConfig(AppConfig):
    name = "metering"

    def ready(self):
        # Imported here, as Django asks: these modules load models.
        from apikeys.models import APIKey
        from plans.models import Customer

        from .checks import redis_layout, redis_persistence
        from .protection import refuse_deleting_pending_usage

        checks.register(redis_persistence, "redis")
        checks.register(redis_layout, "redis")
        for model in (APIKey, Customer):
            pre_delete.connect(
                refuse_deleting_pending_usage, sender=model, dispatch_uid=f"metering.{model.__name__}"
            )
