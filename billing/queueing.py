"""Queueing billing's Celery tasks from its services.

The services sit below the task module that calls them, so they name a task
rather than import it (DESIGN.md: "a task looked up by name"); billing.apps
loads billing.tasks at start, so every process has the names registered.
"""

import logging

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

APPLY_STRIPE_EVENT = "billing.tasks.apply_stripe_event"
RUN_STRIPE_SYNC = "billing.tasks.run_stripe_sync"
RECONCILE_CUSTOMER = "billing.tasks.reconcile_customer"
SEND_PAST_DUE_WARNING = "billing.tasks.send_past_due_warning"


def queue_now(task_name: str, *args) -> None:
    """`task.delay(*args)`. A failure to queue (or, eagerly, of the task
    itself) is logged, not raised: the row it is about is stored with its
    status, and the reconcile or a replay from admin finishes it."""
    try:
        current_app.tasks[task_name].delay(*args)
    except Exception:
        logger.exception("%s%r failed or could not be queued", task_name, args)


def queue_after_commit(task_name: str, *args) -> None:
    """`queue_now` once the transaction commits: a worker never looks for a
    row that is not there yet, and a rollback queues nothing."""
    transaction.on_commit(lambda: queue_now(task_name, *args))
