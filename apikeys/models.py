from django.db import models
from django.db.models import Q
from django.utils import timezone

DEFAULT_SCOPES = ["api"]


def default_scopes() -> list[str]:
    return list(DEFAULT_SCOPES)


class KeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class APIKey(models.Model):
    """A customer's API key. Only an HMAC of the key is stored, never the key."""

    customer = models.ForeignKey("plans.Customer", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=32, db_index=True, help_text="The public start of the key, safe to show."
    )
    # "v<pepper version>$<HMAC-SHA256 hex>" (apikeys.keys.stored_hash)
    hashed_key = models.CharField(max_length=80, unique=True, editable=False)
    scopes = models.JSONField(default=default_scopes, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set when a rotation replaced the key while letting it work on: its
    # expires_at is then the end of that overlap window (apikeys.services).
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("created_at")),
                name="apikey_expires_after_creation",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    def is_retiring(self, now=None) -> bool:
        """Replaced by a rotation, still working until its expiry."""
        return self.rotated_at is not None and self.status(now) == KeyStatus.ACTIVE

    def status(self, now=None) -> KeyStatus:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return KeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return KeyStatus.EXPIRED
        return KeyStatus.ACTIVE
