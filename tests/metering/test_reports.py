"""Cost baselines per endpoint and the margin of each tier, from hand-made measurements."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from apikeys.services import api_key_create
from metering.cost import CPU_BUCKETS_MS
from metering.models import EndpointCost, UsageRecord
from metering.reports import endpoint_costs, tier_margins
from plans.models import QuotaPeriod, Tier
from plans.services import customer_get_or_create


def this_hour():
    return timezone.now().replace(minute=0, second=0, microsecond=0)


def measure(endpoint, *, requests, cpu_us=0, bytes_out=0, calls=0, buckets=None, hour=None):
    """Store one hour of cost totals for an endpoint, as the flush would."""
    metrics = {
        "requests": requests,
        "cpu_us": cpu_us,
        "bytes_out": bytes_out,
        "third_party_calls": calls,
        **{f"cpu_b{index}": count for index, count in (buckets or {}).items()},
    }
    EndpointCost.objects.bulk_create(
        EndpointCost(endpoint=endpoint, hour=hour or this_hour(), metric=metric, value=value)
        for metric, value in metrics.items()
    )


def summary(endpoint):
    return next(s for s in endpoint_costs() if s.endpoint == endpoint)


def margin(slug):
    return next(m for m in tier_margins() if m.tier.slug == slug)


def use(customer, endpoint, count):
    """Billed usage of one customer on one endpoint this hour."""
    key = api_key_create(customer=customer, name=f"{endpoint} key").api_key
    UsageRecord.objects.create(
        customer=customer, api_key=key, endpoint=endpoint, hour=this_hour(), count=count
    )


@pytest.fixture
def echo_and_primes(db):
    """Echo: 1 ms a request ($0.000002). Primes: 100 ms a request ($0.0002).
    At the overall mix (1000 echo, 100 primes) a request costs $0.00002."""
    measure("api:echo", requests=1000, cpu_us=1000 * 1000)
    measure("api:primes", requests=100, cpu_us=100 * 100_000)


# endpoint_costs


@pytest.fixture
def geocode(db):
    """4 requests: 10 ms CPU, 8 KB out and 2 third-party calls in all."""
    measure("geocode", requests=4, cpu_us=10_000, bytes_out=8 * 1024, calls=2, buckets={3: 3, 6: 1})


def test_endpoint_costs_gives_the_mean_cpu_ms(geocode):
    assert summary("geocode").mean_cpu_ms == Decimal("2.5")


def test_endpoint_costs_gives_the_mean_kb_out(geocode):
    assert summary("geocode").mean_kb_out == Decimal("2")


def test_endpoint_costs_gives_third_party_calls_per_request(geocode):
    assert summary("geocode").third_party_calls_per_request == Decimal("0.5")


def test_endpoint_costs_prices_1000_requests_at_the_default_unit_prices(geocode):
    # 2.5 ms x $0.000002 + 2 KB x $0.000001 + 0.5 calls x $0.005 = $0.002507 a request
    assert summary("geocode").cost_per_1000 == Decimal("2.507")


@override_settings(COST_PER_CPU_MS=0.001, COST_PER_KB_OUT=0.0005, COST_PER_THIRD_PARTY_CALL=0.01)
def test_endpoint_costs_uses_the_unit_prices_in_settings(geocode):
    # 2.5 ms x $0.001 + 2 KB x $0.0005 + 0.5 calls x $0.01 = $0.0085 a request
    assert summary("geocode").cost_per_1000 == Decimal("8.5")


@pytest.mark.parametrize(
    ("buckets", "p95_ms"),
    [
        ({3: 19, 6: 1}, 1),  # the 19th of 20 requests is still in the 1 ms bucket
        ({3: 18, 6: 2}, 10),
        ({0: 20}, 0.1),
        ({4: 1, 9: 19}, 100),
    ],
)
def test_endpoint_costs_gives_p95_as_the_upper_edge_of_its_bucket(db, buckets, p95_ms):
    measure("echo", requests=20, cpu_us=20_000, buckets=buckets)
    assert summary("echo").p95_cpu_ms == Decimal(str(p95_ms))


def test_p95_in_the_open_bucket_is_at_least_the_last_edge(db):
    measure("slow", requests=1, cpu_us=9_000_000, buckets={len(CPU_BUCKETS_MS): 1})
    assert summary("slow").p95_cpu_ms == Decimal(str(CPU_BUCKETS_MS[-1]))


def test_endpoint_costs_adds_up_the_hours(db):
    measure("echo", requests=1, cpu_us=1000, hour=this_hour() - timedelta(hours=2))
    measure("echo", requests=3, cpu_us=7000)
    assert (summary("echo").requests, summary("echo").mean_cpu_ms) == (4, Decimal(2))


def test_endpoint_costs_leaves_out_measurements_older_than_30_days(db):
    measure("echo", requests=1, cpu_us=1000)
    measure("echo", requests=9, cpu_us=900_000, hour=this_hour() - timedelta(days=31))
    assert summary("echo").requests == 1


def test_endpoint_costs_skips_an_endpoint_with_no_requests(db):
    measure("echo", requests=0)
    assert endpoint_costs() == []


# tier_margins


def test_a_tier_without_usage_is_costed_at_the_overall_mix(default_tiers, echo_and_primes):
    # Enterprise: 500,000 requests x $0.00002
    assert margin("enterprise").cost_at_full_quota == Decimal("10")


def test_a_tier_with_usage_is_costed_at_its_own_mix(default_tiers, echo_and_primes, other_customer):
    use(other_customer, "api:echo", 30)
    use(other_customer, "api:primes", 10)
    # Pro: (30 x $0.000002 + 10 x $0.0002) / 40 = $0.0000515 a request, x 50,000
    assert margin("pro").cost_at_full_quota == Decimal("2.575")
    assert margin("enterprise").cost_at_full_quota == Decimal("10")


def test_the_full_quota_counts_every_period_in_a_month(default_tiers, echo_and_primes):
    Tier.objects.filter(slug="pro").update(quota=100, quota_period=QuotaPeriod.HOUR)
    assert margin("pro").monthly_units == 100 * 24 * 30
    assert margin("pro").cost_at_full_quota == Decimal("1.44")


def test_the_ratio_is_price_over_cost(default_tiers, echo_and_primes):
    # Enterprise: $199 / $10
    assert margin("enterprise").ratio == Decimal("19.90")


def test_a_paid_tier_under_3x_is_flagged(default_tiers, db):
    measure("geocode", requests=10, calls=10)  # $0.005 a request: Pro costs $250 at full quota
    assert margin("pro").ratio == Decimal("0.11")
    assert margin("pro").under_floor


def test_a_paid_tier_at_3x_or_more_is_not_flagged(default_tiers, echo_and_primes):
    assert not margin("pro").under_floor


def test_a_paid_tier_just_under_3x_is_flagged_even_if_its_ratio_rounds_to_3(default_tiers, db):
    measure("echo", requests=10, cpu_us=968_000)  # 96.8 ms: Pro costs $9.68, 2.9959x its price
    assert margin("pro").under_floor
    assert margin("pro").ratio < 3


def test_a_free_tier_is_never_flagged(default_tiers, db):
    measure("geocode", requests=10, calls=10)
    assert margin("free").cost_at_full_quota == Decimal("5")
    assert not margin("free").under_floor


def test_a_free_tier_reports_what_all_its_customers_cost(default_tiers, echo_and_primes, customer):
    customer_get_or_create(email="carol@example.com")
    # Free: 1,000 requests x $0.00002 = $0.02 each, two customers
    assert margin("free").customers == 2
    assert margin("free").free_tier_total_cost == Decimal("0.04")


def test_without_measurements_a_tier_has_no_ratio_and_no_flag(default_tiers, other_customer):
    use(other_customer, "api:echo", 30)
    assert margin("pro").ratio is None
    assert not margin("pro").under_floor


# commands


def command_output(name: str) -> str:
    out = io.StringIO()
    call_command(name, stdout=out)
    return out.getvalue()


def test_cost_report_prints_each_endpoints_figures(geocode):
    line = next(line for line in command_output("cost_report").splitlines() if line.startswith("geocode"))
    assert line.split() == ["geocode", "4", "2.50", "10.00", "2.00", "0.50", "2.50700"]


def test_cost_report_prints_the_unit_prices(db):
    assert "$0.000002 per CPU ms" in command_output("cost_report")


def test_cost_report_says_when_nothing_was_sampled(db):
    assert "No samples yet" in command_output("cost_report")


def test_margin_report_flags_a_paid_tier_under_3x(default_tiers, db):
    measure("geocode", requests=10, calls=10)
    lines = {line.split()[0]: line for line in command_output("margin_report").splitlines()[1:]}
    assert lines["pro"].split()[:5] == ["pro", "29.00", "50000", "250.00", "0.11x"]
    assert lines["pro"].endswith("UNDER 3x")
    assert "UNDER" not in lines["free"]


def test_margin_report_gives_the_free_tiers_total_cost(default_tiers, echo_and_primes, customer):
    lines = {line.split()[0]: line for line in command_output("margin_report").splitlines()[1:]}
    assert "free: 1 customers cost up to $0.02/month" in lines["free"]
    assert lines["enterprise"].split()[-2:] == ["19.90x", "ok"]


def test_margin_report_says_when_nothing_was_measured(default_tiers):
    lines = {line.split()[0]: line for line in command_output("margin_report").splitlines()[1:]}
    assert "n/a" in lines["pro"]
    assert lines["pro"].endswith("no cost measured yet")
