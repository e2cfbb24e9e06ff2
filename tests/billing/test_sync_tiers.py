from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from plans.models import Tier
from tests.utils import manage_py

pytestmark = pytest.mark.django_db

GOOD_TIER = """
[tiers.basic]
name = "Basic"
price = "9.00"
currency = "usd"
quota = 100
quota_period = "day"
burst = 2
"""


def sync(path) -> str:
    out = StringIO()
    call_command("sync_tiers", str(path), stdout=out)
    return out.getvalue()


def write(tmp_path, text):
    path = tmp_path / "tiers.toml"
    path.write_text(text)
    return path


def snapshot():
    return list(Tier.objects.order_by("slug").values())


def test_the_default_file_creates_the_three_tiers():
    output = sync(settings.BASE_DIR / "tiers.toml")
    tiers = {tier.slug: tier for tier in Tier.objects.all()}
    assert set(tiers) == {"free", "pro", "enterprise"}
    assert (tiers["free"].price, tiers["free"].quota, tiers["free"].burst) == (Decimal("0.00"), 1000, 5)
    assert (tiers["pro"].price, tiers["pro"].quota, tiers["pro"].burst) == (Decimal("29.00"), 50000, 20)
    assert (tiers["enterprise"].price, tiers["enterprise"].quota) == (Decimal("199.00"), 500000)
    assert {tier.quota_period for tier in tiers.values()} == {"month"}
    assert "created tier free" in output


def test_running_it_twice_changes_nothing():
    sync(settings.BASE_DIR / "tiers.toml")
    before = snapshot()
    output = sync(settings.BASE_DIR / "tiers.toml")
    assert snapshot() == before
    assert "0 created, 0 updated, 0 kept, 3 unchanged" in output


def test_it_prints_what_it_changed(tmp_path):
    sync(write(tmp_path, GOOD_TIER))
    output = force(write(tmp_path, GOOD_TIER.replace('"9.00"', '"12.50"')))
    assert "updated tier basic: price 9.00 -> 12.50" in output
    assert Tier.objects.get(slug="basic").price == Decimal("12.50")


def test_an_equal_price_written_differently_is_unchanged(tmp_path):
    sync(write(tmp_path, GOOD_TIER))
    assert "unchanged tier basic" in sync(write(tmp_path, GOOD_TIER.replace('"9.00"', '"9"')))


def test_optional_fields_are_applied(tmp_path):
    extra = 'overage_price_per_1000 = "0.40"\nstripe_price_id = "price_123"\nis_public = false\n'
    sync(write(tmp_path, GOOD_TIER.replace('"day"', '"month"') + extra))  # overage needs a month
    tier = Tier.objects.get(slug="basic")
    assert (tier.overage_price_per_1000, tier.stripe_price_id, tier.is_public) == (
        Decimal("0.40"),
        "price_123",
        False,
    )


def test_tiers_missing_from_the_file_are_left_alone(tmp_path):
    sync(settings.BASE_DIR / "tiers.toml")
    sync(write(tmp_path, GOOD_TIER))
    assert Tier.objects.count() == 4


def assert_rejected(tmp_path, text, *fragments):
    """The command fails naming tier and field, and the database is untouched."""
    sync(settings.BASE_DIR / "tiers.toml")
    before = snapshot()
    with pytest.raises(CommandError) as error:
        sync(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(error.value)
    assert "nothing was changed" in str(error.value)
    assert snapshot() == before


def test_an_unknown_period_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER.replace('"day"', '"fortnight"'), "tier 'basic'", "'quota_period'")


def test_a_negative_quota_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER.replace("quota = 100", "quota = -5"), "tier 'basic'", "'quota'")


def test_a_missing_field_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER.replace("burst = 2\n", ""), "tier 'basic'", "'burst'", "missing")


def test_an_unknown_field_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER + "colour = 'red'\n", "tier 'basic'", "'colour'", "unknown")


def test_bad_toml_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER + "quota = = 3\n", "not valid TOML")


def test_a_wrongly_typed_value_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER.replace("quota = 100", "quota = 1.5"), "'quota'", "integer")


def test_a_boolean_is_not_taken_for_an_integer(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER.replace("burst = 2", "burst = true"), "'burst'")


def test_an_uppercase_currency_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER.replace('"usd"', '"USD"'), "'currency'")


def test_a_price_that_is_not_a_number_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER.replace('"9.00"', '"nine"'), "'price'")


def test_an_invalid_slug_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER.replace("[tiers.basic]", '[tiers."not a slug"]'), "'slug'")


def test_a_file_without_tiers_is_rejected(tmp_path):
    assert_rejected(tmp_path, 'title = "x"\n', "unknown top-level key 'title'")


def test_one_bad_tier_keeps_the_good_ones_from_being_written(tmp_path):
    bad = GOOD_TIER.replace("basic", "second").replace("quota = 100", "quota = 0")
    assert_rejected(tmp_path, GOOD_TIER + bad, "tier 'second'", "'quota'")
    assert not Tier.objects.filter(slug="basic").exists()


def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        sync(tmp_path / "nope.toml")


@pytest.mark.django_db(transaction=True)
def test_a_bad_file_exits_non_zero_from_the_shell(tmp_path):
    path = write(tmp_path, GOOD_TIER.replace("quota = 100", "quota = -5"))
    result = manage_py("sync_tiers", str(path))
    assert result.returncode != 0
    assert "tier 'basic', field 'quota'" in result.stderr


def test_overage_on_a_quota_period_other_than_the_billing_month_is_rejected(tmp_path):
    text = GOOD_TIER + 'overage_price_per_1000 = "2.00"\n'  # a daily quota
    assert_rejected(tmp_path, text, "tier 'basic'", "'overage_price_per_1000'", "billing month")


def test_a_three_decimal_currency_is_rejected(tmp_path):
    assert_rejected(tmp_path, GOOD_TIER.replace('"usd"', '"kwd"'), "'currency'", "three-decimal")


def test_a_fraction_of_a_zero_decimal_currency_is_rejected(tmp_path):
    text = GOOD_TIER.replace('"usd"', '"jpy"').replace('"9.00"', '"9.50"')
    assert_rejected(tmp_path, text, "'price'", "whole number of jpy")


def test_a_whole_price_in_a_zero_decimal_currency_is_accepted(tmp_path):
    sync(write(tmp_path, GOOD_TIER.replace('"usd"', '"jpy"').replace('"9.00"', '"1000.00"')))
    assert Tier.objects.get(slug="basic").price == Decimal("1000")


def edit_in_admin(slug: str, **values) -> None:
    """What an operator's save in admin leaves in the table."""
    Tier.objects.filter(slug=slug).update(**values)


def test_it_keeps_a_tier_an_operator_edited(default_tiers):
    # The finding: make run's sync_tiers put a quota of 20 back to 1000 and a
    # price of 39 back to 29, and kept the overage price the file does not name.
    edit_in_admin("free", quota=20)
    edit_in_admin("pro", price=Decimal("39.00"), overage_price_per_1000=Decimal("0.50"))
    sync(settings.BASE_DIR / "tiers.toml")
    free, pro = Tier.objects.get(slug="free"), Tier.objects.get(slug="pro")
    assert free.quota == 20
    assert (pro.price, pro.overage_price_per_1000) == (Decimal("39.00"), Decimal("0.50"))


def test_it_says_what_differs_from_the_file_and_that_it_kept_the_stored_values(default_tiers):
    edit_in_admin("free", quota=20)
    edit_in_admin("pro", price=Decimal("39.00"), overage_price_per_1000=Decimal("0.50"))
    output = sync(settings.BASE_DIR / "tiers.toml")
    assert "kept tier free (differs from the file): quota 20 (file: 1000)" in output
    assert (
        "kept tier pro (differs from the file): price 39.00 (file: 29.00), "
        "overage_price_per_1000 0.50 (file: none)" in output
    )
    assert "unchanged tier enterprise" in output
    assert "0 created, 0 updated, 2 kept, 1 unchanged" in output
    assert output.rstrip().endswith("To overwrite them with the file: python manage.py sync_tiers --force")


def test_it_still_creates_the_tiers_that_are_missing(default_tiers, tmp_path):
    edit_in_admin("free", quota=20)
    Tier.objects.filter(slug="enterprise").delete()
    output = sync(settings.BASE_DIR / "tiers.toml")
    assert "created tier enterprise" in output
    assert Tier.objects.get(slug="enterprise").quota == 500000
    assert Tier.objects.get(slug="free").quota == 20


def force(path) -> str:
    out = StringIO()
    call_command("sync_tiers", str(path), "--force", stdout=out)
    return out.getvalue()


def test_force_overwrites_an_edited_tier_with_the_file_and_prints_the_diff(default_tiers):
    edit_in_admin("pro", price=Decimal("39.00"), overage_price_per_1000=Decimal("0.50"))
    output = force(settings.BASE_DIR / "tiers.toml")
    pro = Tier.objects.get(slug="pro")
    # No mix of both: the overage price the file leaves out is its hard limit.
    assert (pro.price, pro.overage_price_per_1000) == (Decimal("29.00"), None)
    assert "updated tier pro: price 39.00 -> 29.00, overage_price_per_1000 0.50 -> none" in output
    assert "0 created, 1 updated, 0 kept, 2 unchanged" in output


def test_force_keeps_the_stripe_price_id_the_file_leaves_out(tmp_path):
    force(write(tmp_path, GOOD_TIER + 'stripe_price_id = "price_123"\n'))
    force(write(tmp_path, GOOD_TIER.replace('"9.00"', '"12.50"')))
    assert Tier.objects.get(slug="basic").stripe_price_id == "price_123"
