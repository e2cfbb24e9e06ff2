import pytest

from plans.models import Tier
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
    tiers_sync(declared_tiers={"free": {"quota": 45}}, force=True)
    assert announcements == ["Tier"]


def test_a_sync_that_changes_nothing_announces_nothing(default_tiers, announcements):
    tiers_sync(declared_tiers={"free": {"quota": default_tiers["free"].quota}})
    assert announcements == []


def test_a_tier_that_differs_from_its_declaration_is_kept_and_announces_nothing(default_tiers, announcements):
    (change,) = tiers_sync(declared_tiers={"free": {"quota": 45}})
    assert (change.action, change.changes) == ("kept", {"quota": (1000, 45)})
    assert Tier.objects.get(slug="free").quota == 1000
    assert announcements == []


def test_a_forced_sync_overwrites_the_tier_and_announces_it(default_tiers, announcements):
    (change,) = tiers_sync(declared_tiers={"free": {"quota": 45}}, force=True)
    assert change.action == "updated"
    assert announcements == ["Tier"]
