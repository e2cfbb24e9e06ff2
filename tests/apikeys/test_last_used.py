"""The last-used writer: its own thread, and what it does when PostgreSQL is down."""

from datetime import UTC, datetime

import pytest

from apikeys.last_used import LastUsedWriter
from apikeys.models import APIKey
from saas.postgresql.watchdog import server_breakers_reset
from tests.faults.postgres import default_connection_through, postgres_proxy

# The writer's thread has its own connection: it sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 30  # for the writer's thread to try, a bound rather than a measure


def last_used_at(created) -> datetime | None:
    return APIKey.objects.get(pk=created.api_key.pk).last_used_at


def moment(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@pytest.fixture
def writer():
    return LastUsedWriter()


def test_it_writes_what_it_is_handed_in_its_own_thread(writer, api_key):
    writer.submit({api_key.api_key.pk: 1_800_000_000})
    assert writer.wait_until_idle(WAIT_SECONDS)
    assert last_used_at(api_key) == moment(1_800_000_000)


def test_a_batch_that_fails_is_kept_and_written_with_the_next(writer, api_key, revoked_key):
    with postgres_proxy() as proxy, default_connection_through(proxy):
        proxy.refuse()
        writer.submit({api_key.api_key.pk: 1_800_000_000})
        assert writer.wait_until_idle(WAIT_SECONDS)
        proxy.forward()
        server_breakers_reset()  # as once the backoff after the refusal has passed
        writer.submit({revoked_key.api_key.pk: 1_800_000_100})
        assert writer.wait_until_idle(WAIT_SECONDS)
    assert last_used_at(api_key) == moment(1_800_000_000)
    assert last_used_at(revoked_key) == moment(1_800_000_100)


def test_a_failed_batch_is_not_retried_until_the_next_hand_over(writer, api_key):
    with postgres_proxy() as proxy, default_connection_through(proxy):
        proxy.refuse()
        writer.submit({api_key.api_key.pk: 1_800_000_000})
        assert writer.wait_until_idle(WAIT_SECONDS)
        proxy.forward()
        server_breakers_reset()  # as once the backoff after the refusal has passed
        assert writer.wait_until_idle(WAIT_SECONDS)
    assert last_used_at(api_key) is None


def test_merged_batches_keep_each_keys_latest_use(writer, api_key):
    with postgres_proxy() as proxy, default_connection_through(proxy):
        proxy.refuse()
        writer.submit({api_key.api_key.pk: 1_800_000_100})
        assert writer.wait_until_idle(WAIT_SECONDS)
        proxy.forward()
        server_breakers_reset()  # as once the backoff after the refusal has passed
        writer.submit({api_key.api_key.pk: 1_800_000_000})
        assert writer.wait_until_idle(WAIT_SECONDS)
    assert last_used_at(api_key) == moment(1_800_000_100)


def test_uses_noted_while_it_rests_are_written_together_after_the_interval(api_key, revoked_key):
    writer = LastUsedWriter(interval=1.0)
    writer.note(api_key.api_key.pk, 1_800_000_000)
    assert writer.wait_until_idle(WAIT_SECONDS)
    writer.note(revoked_key.api_key.pk, 1_800_000_001)
    writer.note(revoked_key.api_key.pk, 1_800_000_002)
    assert last_used_at(revoked_key) is None  # resting: at most one write per interval
    assert writer.wait_until_idle(WAIT_SECONDS)
    assert last_used_at(api_key) == moment(1_800_000_000)
    assert last_used_at(revoked_key) == moment(1_800_000_002)


def test_an_earlier_use_noted_later_never_moves_the_last_use_back(writer, api_key):
    writer.note(api_key.api_key.pk, 1_800_000_100)
    writer.note(api_key.api_key.pk, 1_800_000_000)
    assert writer.wait_until_idle(WAIT_SECONDS)
    assert last_used_at(api_key) == moment(1_800_000_100)
