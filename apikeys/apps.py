from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self):
        # Imported here, as Django asks: these modules load models.
        from plans.signals import limits_changed

        from . import schema  # noqa: F401  registers the OpenAPI security scheme
        from .context import invalidate_key_contexts, tier_key_contexts

        limits_changed.connect(
            lambda sender, tiers, **kwargs: invalidate_key_contexts(
                tier_key_contexts(tier.pk for tier in tiers)
            ),
            weak=False,
            dispatch_uid="apikeys.invalidate",
        )
