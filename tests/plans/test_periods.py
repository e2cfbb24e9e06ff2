from datetime import UTC, datetime, timedelta, timezone

import pytest

from plans.periods import add_months, period_bounds
from tests.utils import month_ends


def at(*parts):
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("minute", at(2026, 5, 4, 12, 34), at(2026, 5, 4, 12, 34), at(2026, 5, 4, 12, 35)),
        ("minute", at(2026, 5, 4, 12, 33, 59, 999_999), at(2026, 5, 4, 12, 33), at(2026, 5, 4, 12, 34)),
        ("hour", at(2026, 5, 4, 13), at(2026, 5, 4, 13), at(2026, 5, 4, 14)),
        ("hour", at(2026, 5, 4, 12, 59, 59, 999_999), at(2026, 5, 4, 12), at(2026, 5, 4, 13)),
        ("day", at(2026, 5, 5), at(2026, 5, 5), at(2026, 5, 6)),
        ("day", at(2026, 5, 4, 23, 59, 59, 999_999), at(2026, 5, 4), at(2026, 5, 5)),
        ("day", at(2026, 12, 31, 18), at(2026, 12, 31), at(2027, 1, 1)),
    ],
)
def test_fixed_periods_are_utc_calendar_windows(period, now, start, end):
    assert period_bounds(period, now) == (start, end)


def test_a_fixed_period_ignores_the_billing_period():
    bounds = period_bounds("hour", at(2026, 5, 4, 12, 30), at(2026, 5, 1, 7, 15), at(2026, 6, 1, 7, 15))
    assert bounds == (at(2026, 5, 4, 12), at(2026, 5, 4, 13))


def test_a_period_is_found_in_utc_whatever_the_zone_of_now():
    paris_morning = datetime(2026, 5, 5, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert period_bounds("day", paris_morning) == (at(2026, 5, 4), at(2026, 5, 5))


def test_a_month_without_a_billing_period_is_the_calendar_month():
    assert period_bounds("month", at(2026, 5, 17, 9)) == (at(2026, 5, 1), at(2026, 6, 1))


def test_the_calendar_month_ends_at_its_last_microsecond():
    assert period_bounds("month", at(2026, 5, 31, 23, 59, 59, 999_999)) == (at(2026, 5, 1), at(2026, 6, 1))


def test_the_calendar_month_starts_at_its_first_instant():
    assert period_bounds("month", at(2026, 6, 1)) == (at(2026, 6, 1), at(2026, 7, 1))


def test_december_ends_in_january_of_the_next_year():
    assert period_bounds("month", at(2026, 12, 31, 23)) == (at(2026, 12, 1), at(2027, 1, 1))


def test_february_of_a_leap_year_has_29_days():
    start, end = period_bounds("month", at(2024, 2, 10))
    assert (start, end - start) == (at(2024, 2, 1), timedelta(days=29))


def test_february_of_a_common_year_has_28_days():
    start, end = period_bounds("month", at(2026, 2, 10))
    assert (start, end - start) == (at(2026, 2, 1), timedelta(days=28))


@month_ends()
def test_the_calendar_month_at_its_last_half_minute_has_its_real_length(edge):
    assert period_bounds("month", edge.moment) == (edge.month_start, edge.month_end)


@month_ends()
def test_the_calendar_month_after_a_month_end_is_the_next_month(edge):
    assert period_bounds("month", edge.month_end) == (edge.month_end, edge.next_month_end)


@month_ends()
def test_the_day_at_a_month_end_ends_at_midnight_of_the_next_month(edge):
    assert period_bounds("day", edge.moment) == (edge.month_end - timedelta(days=1), edge.month_end)


def test_a_month_inside_the_billing_period_is_the_billing_period():
    billing = at(2026, 5, 10, 7, 15), at(2026, 6, 10, 7, 15)
    assert period_bounds("month", at(2026, 6, 2), *billing) == billing


def test_the_billing_period_includes_its_first_instant():
    billing = at(2026, 5, 10, 7, 15), at(2026, 6, 10, 7, 15)
    assert period_bounds("month", at(2026, 5, 10, 7, 15), *billing) == billing


def test_the_billing_period_excludes_its_end():
    billing = at(2026, 5, 10, 7, 15), at(2026, 6, 10, 7, 15)
    bounds = period_bounds("month", at(2026, 6, 10, 7, 15), *billing)
    assert bounds == (at(2026, 6, 10, 7, 15), at(2026, 7, 10, 7, 15))


def test_a_billing_period_in_another_zone_is_returned_in_utc():
    new_york = timezone(timedelta(hours=-4))
    start, end = datetime(2026, 5, 10, 3, 15, tzinfo=new_york), datetime(2026, 6, 10, 3, 15, tzinfo=new_york)
    bounds = period_bounds("month", at(2026, 5, 20), start, end)
    assert [moment.utcoffset() for moment in bounds] == [timedelta(0), timedelta(0)]
    assert bounds == (at(2026, 5, 10, 7, 15), at(2026, 6, 10, 7, 15))


def test_a_month_before_the_billing_period_starts_is_the_calendar_month():
    bounds = period_bounds("month", at(2026, 5, 3), at(2026, 5, 10), at(2026, 6, 10))
    assert bounds == (at(2026, 5, 1), at(2026, 6, 1))


def test_after_the_billing_period_ended_whole_months_follow_its_anchor():
    bounds = period_bounds("month", at(2026, 8, 20), at(2026, 5, 10, 7, 15), at(2026, 6, 10, 7, 15))
    assert bounds == (at(2026, 8, 10, 7, 15), at(2026, 9, 10, 7, 15))


def test_the_anchored_month_before_the_anchor_time_of_day_is_the_previous_one():
    bounds = period_bounds("month", at(2026, 8, 10, 7, 14), at(2026, 5, 10, 7, 15), at(2026, 6, 10, 7, 15))
    assert bounds == (at(2026, 7, 10, 7, 15), at(2026, 8, 10, 7, 15))


def test_an_anchor_on_the_31st_ends_february_on_the_29th_in_a_leap_year():
    bounds = period_bounds("month", at(2024, 2, 15), at(2023, 12, 31, 10), at(2024, 1, 31, 10))
    assert bounds == (at(2024, 1, 31, 10), at(2024, 2, 29, 10))


def test_an_anchor_on_the_31st_goes_from_february_29th_back_to_march_31st():
    bounds = period_bounds("month", at(2024, 3, 5), at(2024, 1, 31, 10), at(2024, 2, 29, 10))
    assert bounds == (at(2024, 2, 29, 10), at(2024, 3, 31, 10))


def test_an_anchor_on_the_31st_goes_from_february_28th_back_to_march_31st():
    bounds = period_bounds("month", at(2023, 3, 5), at(2023, 1, 31, 10), at(2023, 2, 28, 10))
    assert bounds == (at(2023, 2, 28, 10), at(2023, 3, 31, 10))


def test_an_anchor_on_the_31st_is_kept_when_the_stored_period_starts_on_a_short_month():
    bounds = period_bounds("month", at(2024, 4, 5), at(2024, 2, 29, 10), at(2024, 3, 31, 10))
    assert bounds == (at(2024, 3, 31, 10), at(2024, 4, 30, 10))


def test_an_anchor_on_the_31st_reaches_the_next_31st_after_a_30_day_month():
    bounds = period_bounds("month", at(2024, 5, 5), at(2024, 2, 29, 10), at(2024, 3, 31, 10))
    assert bounds == (at(2024, 4, 30, 10), at(2024, 5, 31, 10))


def test_anchored_months_roll_over_the_year():
    bounds = period_bounds("month", at(2027, 1, 20), at(2026, 10, 31, 10), at(2026, 11, 30, 10))
    assert bounds == (at(2026, 12, 31, 10), at(2027, 1, 31, 10))


@pytest.mark.parametrize(
    ("stored", "now", "expected"),
    [
        (
            (at(2026, 12, 31, 10), at(2027, 1, 31, 10)),
            at(2027, 1, 31, 10, 0, 30),
            (at(2027, 1, 31, 10), at(2027, 2, 28, 10)),
        ),
        (
            (at(2027, 12, 31, 10), at(2028, 1, 31, 10)),
            at(2028, 1, 31, 10, 0, 30),
            (at(2028, 1, 31, 10), at(2028, 2, 29, 10)),
        ),
        ((at(2027, 12, 1), at(2028, 1, 1)), at(2028, 1, 1, 0, 0, 30), (at(2028, 1, 1), at(2028, 2, 1))),
    ],
    ids=["jan-31-to-feb-28", "jan-31-to-feb-29", "dec-31-to-jan-1"],
)
def test_a_billing_period_renews_into_a_month_of_its_real_length(stored, now, expected):
    """The renewal webhook not applied yet: the next period is guessed from the anchor."""
    assert period_bounds("month", now, *stored) == expected


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        (at(2026, 5, 17, 9, 30), 1, at(2026, 6, 17, 9, 30)),
        (at(2024, 1, 31), 1, at(2024, 2, 29)),
        (at(2023, 1, 31), 1, at(2023, 2, 28)),
        (at(2026, 3, 31), 1, at(2026, 4, 30)),
        (at(2026, 1, 31), 2, at(2026, 3, 31)),
        (at(2026, 11, 30), 3, at(2027, 2, 28)),
        (at(2026, 12, 15), 1, at(2027, 1, 15)),
        (at(2026, 1, 15), -1, at(2025, 12, 15)),
        (at(2024, 2, 29), 12, at(2025, 2, 28)),
    ],
)
def test_add_months_clamps_the_day_to_the_end_of_the_month(moment, months, expected):
    assert add_months(moment, months) == expected
