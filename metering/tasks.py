"""Celery tasks: thin wrappers that take ids and call services."""

from datetime import datetime
from smtplib import SMTPException

from celery import shared_task

from core.periodic import once_per_interval

from . import alerts
from .flush import flush_usage
from .limiter import LimiterUnavailable
from .usage import settle_from_arguments


@shared_task(acks_late=True)
@once_per_interval("flush-usage")
def flush_usage_task() -> dict:
    """Beat: move pending usage from Redis to PostgreSQL. Safe to run twice at
    once; once per interval however many beats send it, one flush at a time."""
    result = flush_usage()
    if result.skipped:
        return {"customers": 0, "units": 0, "skipped": "another flush is running"}
    return {"customers": result.customers, "units": result.units}


@shared_task(
    acks_late=True,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=8,
)
def send_quota_alert(customer_id: int, period_start: str, threshold: int) -> bool:
    return alerts.quota_alert_send(
        customer_id=customer_id, period_start=datetime.fromisoformat(period_start), threshold=threshold
    )


@shared_task(
    acks_late=True,
    autoretry_for=(LimiterUnavailable,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=60,  # about four hours of an unreachable Redis; then the reconcile reports it
)
def settle_again(arguments: dict) -> bool:
    """A settle the request path could not apply (Redis out of reach after the
    view): a failure to unbill, or a request with an Idempotency-Key to bill."""
    return settle_from_arguments(arguments).billed
