"""One run per interval of each periodic task, however many Celery beats send it.

Exactly one beat should run (README, "More than one machine"), but a second
one started by mistake, or two overlapping during a deploy, would send every
periodic task twice. Each run first claims its task in Redis (SET NX with an
expiry of half the task's interval); a run that finds the claim taken is
skipped and returns None. Half the interval: a second beat's runs are then
skipped however far its schedule is from the first's (within half an interval
of a claim, or they claim and the first beat's next run falls within theirs),
while one beat's own runs, an interval apart, never are, even when a queue
delays one of them by almost half an interval. The claim is not released at
the end: it marks the interval as done. Nothing relies on it for correctness
(every periodic task is idempotent); it keeps the work, and the Stripe calls,
single.
"""

import functools
import logging

from django.conf import settings
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)


def claim_key(entry: str) -> str:
    # The braces are a hash tag: each claim in a slot of its own on Redis Cluster.
    return f"periodic:v1:claim:{{{entry}}}"


def claim_periodic_run(entry: str) -> bool:
    """Is this run the one of its interval for CELERY_BEAT_SCHEDULE[entry]?"""
    if not settings.REDIS_URL:
        return True  # the embedded default: tasks run eagerly, no beat
    interval_seconds = settings.CELERY_BEAT_SCHEDULE[entry]["schedule"]
    expiry_ms = max(1, int(interval_seconds * 1000 / 2))
    return bool(get_redis_connection("default").set(claim_key(entry), "1", nx=True, px=expiry_ms))


def once_per_interval(entry: str):
    """Decorate a periodic task (under @shared_task): skipped, returning None,
    when its CELERY_BEAT_SCHEDULE entry already ran within half its interval."""

    def decorate(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            if not claim_periodic_run(entry):
                logger.info("periodic task %s: already run in this interval (another beat?); skipped", entry)
                return None
            return function(*args, **kwargs)

        return run

    return decorate
