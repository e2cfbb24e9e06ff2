import pytest

from plans.services import tiers_sync
from plans.signals import limits_changed

pytestmark = pytest.mark.django_db


@pytest.fixture
def announcements():
    received = []

    def receiver(sender, **kwargs):
        received.append(sender.__name__)

    limits_changed.connect(receiver)
    yield received
    limits_changed.disconnect(receiver)


def test_updating_a_tier_announces_that_limits_changed(default_tiers, announcements):
    tiers_sync(declared_tiers={"free": {"quota": 45}})
    assert announcements == ["Tier"]


def test_a_sync_that_changes_nothing_announces_nothing(default_tiers, announcements):
    tiers_sync(declared_tiers={"free": {"quota": default_tiers["free"].quota}})
    assert announcements == []
