"""The what-if of a tier change, replayed over 30 days of usage in PostgreSQL.

The clock is passed in: every date here is fixed, nothing reads today.
"""

from datetime import timedelta
from decimal import Decimal

import pytest

from apikeys.services import api_key_create
from billing.what_if import TierValues, tier_what_if
from metering.models import EndpointCost, RefusalRecord, UsageRecord
from plans.models import SubscriptionStatus, Tier
from plans.services import customer_get_or_create
from tests.utils import utc

NOW = utc(2027, 3, 15, 12)


def proposal(tier: Tier, **changes) -> TierValues:
    values = TierValues.of(tier)
    return TierValues(**{**values.__dict__, **changes})


@pytest.fixture
def pro(default_tiers) -> Tier:
    """Pro: $29 for 50,000 requests a month, a hard limit, burst 20/s."""
    return default_tiers["pro"]


def subscriber(email: str, tier: Tier, *, status=SubscriptionStatus.ACTIVE, **fields):
    customer = customer_get_or_create(email=email, tier_slug=tier.slug)[0]
    for name, value in {"subscription_status": status, **fields}.items():
        setattr(customer, name, value)
    customer.save()
    return customer


def use(customer, units_by_hour: dict) -> None:
    """Billed usage: {hours before NOW: units}."""
    key = api_key_create(customer=customer, name="server").api_key
    UsageRecord.objects.bulk_create(
        UsageRecord(customer=customer, api_key=key, endpoint="echo", hour=NOW - timedelta(hours=h), count=n)
        for h, n in units_by_hour.items()
    )


def spread(total: int, hours: int = 600) -> dict:
    """`total` units over `hours` hours of the window, evenly."""
    return {h: total // hours for h in range(1, hours + 1)}


def measure_cost(*, cpu_us_per_request: int) -> None:
    """Cost samples: 1 ms of CPU costs COST_PER_CPU_MS."""
    hour = NOW - timedelta(hours=3)
    for metric, value in {"requests": 1000, "cpu_us": 1000 * cpu_us_per_request}.items():
        EndpointCost.objects.create(endpoint="echo", hour=hour, metric=metric, value=value)


def test_a_lower_quota_counts_the_customers_who_would_have_hit_429s(pro):
    use(subscriber("heavy@example.com", pro), spread(30_000))
    use(subscriber("light@example.com", pro), spread(6_000))
    what_if = tier_what_if(tier=pro, proposed=proposal(pro, quota=20_000), now=NOW)
    assert what_if.current.customers_refused == 0
    assert what_if.proposed.customers_refused == 1
    assert what_if.proposed.refused_units == 10_000
    assert what_if.proposed.served_units == 26_000


def test_an_overage_price_bills_the_units_over_the_proposed_quota(pro):
    use(subscriber("heavy@example.com", pro), spread(30_000))
    proposed = proposal(pro, quota=20_000, overage_price_per_1000=Decimal("2.00"))
    what_if = tier_what_if(tier=pro, proposed=proposed, now=NOW)
    assert what_if.proposed.customers_refused == 0
    assert what_if.proposed.customers_in_overage == 1
    assert what_if.proposed.overage_units == 10_000
    assert what_if.proposed.overage_revenue == Decimal("20.00")


def test_the_revenue_change_is_price_times_paying_customers_plus_overage(pro):
    use(subscriber("heavy@example.com", pro), spread(30_000))
    subscriber("quiet@example.com", pro)
    subscriber("owes@example.com", pro, status=SubscriptionStatus.UNPAID)
    proposed = proposal(pro, price=Decimal("39.00"), quota=20_000, overage_price_per_1000=Decimal("2"))
    what_if = tier_what_if(tier=pro, proposed=proposed, now=NOW)
    assert what_if.paying_customers == 2
    assert what_if.current.monthly_revenue == Decimal("58.00")
    assert what_if.proposed.monthly_revenue == Decimal("98.00")
    assert what_if.revenue_change == Decimal("40.00")


def test_a_spending_cap_turns_overage_past_it_into_429s(pro):
    use(subscriber("capped@example.com", pro, overage_spending_cap=Decimal("4")), spread(30_000))
    proposed = proposal(pro, quota=20_000, overage_price_per_1000=Decimal("1"))
    outcome = tier_what_if(tier=pro, proposed=proposed, now=NOW).proposed
    assert (outcome.overage_units, outcome.refused_units) == (4_000, 6_000)
    assert outcome.customers_refused == 1


def test_a_negotiated_quota_stays_the_customers_own(pro):
    use(subscriber("deal@example.com", pro, quota_override=40_000), spread(30_000))
    what_if = tier_what_if(tier=pro, proposed=proposal(pro, quota=20_000), now=NOW)
    assert what_if.proposed.customers_refused == 0


def test_usage_before_the_30_days_is_not_counted(pro):
    use(subscriber("old@example.com", pro), {24 * 30 + 1: 30_000, 2: 100})
    what_if = tier_what_if(tier=pro, proposed=proposal(pro, quota=20_000), now=NOW)
    assert what_if.used_units == 100
    assert what_if.proposed.customers_refused == 0


def test_usage_after_the_clock_is_not_counted(pro):
    use(subscriber("later@example.com", pro), {-2: 30_000, 2: 100})
    assert tier_what_if(tier=pro, proposed=proposal(pro), now=NOW).used_units == 100


def test_other_tiers_and_cancelled_customers_are_left_out(pro, default_tiers):
    use(subscriber("free@example.com", default_tiers["free"], status=SubscriptionStatus.NONE), spread(900))
    use(subscriber("gone@example.com", pro, status=SubscriptionStatus.CANCELED), spread(30_000))
    what_if = tier_what_if(tier=pro, proposed=proposal(pro, quota=100), now=NOW)
    assert (what_if.customers, what_if.used_units) == (0, 0)


def test_a_daily_quota_is_counted_per_utc_day(default_tiers):
    daily = Tier.objects.create(slug="daily", name="Daily", price=5, quota=100, quota_period="day", burst=5)
    # 80 units on each of two days: over 100 only if the days were added together.
    use(subscriber("d@example.com", daily), {12: 80, 36: 80})
    what_if = tier_what_if(tier=daily, proposed=proposal(daily, quota=90), now=NOW)
    assert what_if.proposed.customers_over_quota == 0
    assert tier_what_if(tier=daily, proposed=proposal(daily, quota=70), now=NOW).proposed.refused_units == 20


def test_a_minute_quota_is_a_lower_bound_from_hourly_data(default_tiers):
    fast = Tier.objects.create(slug="fast", name="Fast", price=5, quota=10, quota_period="minute", burst=5)
    use(subscriber("m@example.com", fast), {3: 700})
    what_if = tier_what_if(tier=fast, proposed=proposal(fast, quota=5), now=NOW)
    assert not what_if.quota_exact
    assert what_if.proposed.refused_units == 400  # at least: 700 in an hour of 300 allowed


def test_a_burst_is_judged_only_where_an_hours_average_passes_it(pro):
    use(subscriber("steady@example.com", pro), {5: 18_000, 6: 3_000})  # 5/s, then under 1/s
    what_if = tier_what_if(tier=pro, proposed=proposal(pro, burst=4), now=NOW)
    assert what_if.current.hours_over_burst == 0
    assert what_if.proposed.hours_over_burst == 1
    assert what_if.proposed.customers_over_burst == 1


def test_the_proposed_margin_is_flagged_under_three_times_its_cost(pro):
    use(subscriber("a@example.com", pro), spread(6_000))
    measure_cost(cpu_us_per_request=100_000)  # 100 ms a request
    what_if = tier_what_if(tier=pro, proposed=proposal(pro, price=Decimal("1")), now=NOW)
    cost = what_if.current.margin.cost_at_full_quota
    assert cost == what_if.cost_per_request * 50_000
    assert what_if.proposed.margin.ratio == (Decimal(1) / cost).quantize(Decimal("0.01"), "ROUND_DOWN")
    assert what_if.proposed.margin.under_floor
    assert not tier_what_if(
        tier=pro, proposed=proposal(pro, price=cost * 3), now=NOW
    ).proposed.margin.under_floor


def test_an_overage_price_under_three_times_the_cost_per_1000_is_flagged(pro):
    measure_cost(cpu_us_per_request=100_000)
    what_if = tier_what_if(
        tier=pro, proposed=proposal(pro, overage_price_per_1000=Decimal("0.0001")), now=NOW
    )
    assert what_if.proposed.margin.overage_under_floor


def test_without_cost_samples_the_margin_is_unmeasured(pro):
    margin = tier_what_if(tier=pro, proposed=proposal(pro), now=NOW).proposed.margin
    assert margin.ratio is None and not margin.under_floor


def test_todays_429s_are_reported_beside_the_replay(pro):
    customer = subscriber("refused@example.com", pro)
    RefusalRecord.objects.create(customer=customer, hour=NOW - timedelta(hours=4), status=429, count=7)
    RefusalRecord.objects.create(customer=customer, hour=NOW - timedelta(hours=4), status=402, count=3)
    assert tier_what_if(tier=pro, proposed=proposal(pro), now=NOW).refused_429_today == 7


def test_nothing_is_saved(pro):
    use(subscriber("a@example.com", pro), spread(6_000))
    tier_what_if(tier=pro, proposed=proposal(pro, price=Decimal("1"), quota=5), now=NOW)
    pro.refresh_from_db()
    assert (pro.price, pro.quota) == (Decimal("29.00"), 50_000)


def test_the_answer_follows_the_clock_passed_in_not_the_calendar(pro):
    customer = subscriber("a@example.com", pro)
    # A 28-day February and a 31-day August: the window is 30 days either way.
    clocks = (utc(2027, 3, 1), utc(2027, 8, 31, 23))
    for now in clocks:
        use(customer, {h + int((NOW - now).total_seconds() // 3600): n for h, n in spread(30_000).items()})
    answers = [tier_what_if(tier=pro, proposed=proposal(pro, quota=20_000), now=now) for now in clocks]
    assert [(a.used_units, a.proposed.refused_units) for a in answers] == [(30_000, 10_000)] * 2
