import logging

import pytest
from celery import current_app

from billing import queueing

TASK_NAMES = [queueing.APPLY_STRIPE_EVENT, queueing.RUN_STRIPE_SYNC, queueing.RECONCILE_CUSTOMER]
TASK_NAMES.append(queueing.SEND_PAST_DUE_WARNING)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_a_service_queues_by_name_is_registered(name):
    assert name in current_app.tasks


def test_a_task_that_cannot_be_queued_is_logged_not_raised(caplog):
    with caplog.at_level(logging.ERROR, logger="billing.queueing"):
        queueing.queue_now("billing.tasks.no_such_task", 1)
    assert "billing.tasks.no_such_task(1,) failed or could not be queued" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_nothing_is_queued_when_the_transaction_rolls_back(monkeypatch):
    sent = []
    monkeypatch.setattr(queueing, "queue_now", lambda name, *args: sent.append((name, args)))
    with pytest.raises(RuntimeError), queueing.transaction.atomic():
        queueing.queue_after_commit(queueing.RUN_STRIPE_SYNC, 7)
        raise RuntimeError
    with queueing.transaction.atomic():
        queueing.queue_after_commit(queueing.RUN_STRIPE_SYNC, 8)
    assert sent == [(queueing.RUN_STRIPE_SYNC, (8,))]
