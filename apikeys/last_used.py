"""Last-use times of keys: noted per process on the hot path (KeyContextCache),
written here at most once a minute per process."""

from datetime import UTC, datetime

from django.db.models import Q

from .models import APIKey


def api_keys_record_use(*, last_used: dict[int, float]) -> None:
    """Store last-use times (epoch seconds by key id), never moving one backwards."""
    for key_id, when in last_used.items():
        moment = datetime.fromtimestamp(when, tz=UTC)
        APIKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=moment), pk=key_id).update(
            last_used_at=moment
        )
