"""The operator dashboard at /admin/dashboard/, on a hand-built data set.

Two tiers. Basic ($10, 1,000 a month) serves echo at $0.000002 a request;
Plus ($50, 100,000 a month) serves mostly primes at $0.0002, so it earns
under 3x at full quota. In the last 30 days:

| customer | tier | status | billed | refused |
| --- | --- | --- | --- | --- |
| ann | basic | active | 100 echo today, 50 two days ago (and 40 at day -40) | 30 x 429 (and 5 at day -40) |
| ben | basic | past_due | 50 echo today | 20 x 402 |
| cat | plus | trialing | 400 primes today | |
| dan | plus | canceled | 10 echo today | |
| eve | plus | active | | |
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from apikeys.services import api_key_create
from billing.models import EventStatus, StripeEvent
from metering.models import EndpointCost, RefusalRecord, UsageRecord
from plans.models import Customer, SubscriptionStatus, Tier
from saas.dashboard import operator_dashboard
from tests.utils import staff_user, utc

URL = "/admin/dashboard/"


def this_hour():
    return timezone.now().replace(minute=0, second=0, microsecond=0)


def make_customer(name, tier, status):
    user = get_user_model().objects.create_user(username=name, email=f"{name}@example.com")
    return Customer.objects.create(user=user, tier=tier, subscription_status=status)


def bill(customer, endpoint, count, *, days_ago=0):
    key = api_key_create(customer=customer, name=f"{endpoint} {days_ago}").api_key
    hour = this_hour() - timedelta(days=days_ago)
    UsageRecord.objects.create(customer=customer, api_key=key, endpoint=endpoint, hour=hour, count=count)


def refuse(customer, status, count, *, days_ago=0):
    hour = this_hour() - timedelta(days=days_ago)
    RefusalRecord.objects.create(customer=customer, hour=hour, status=status, count=count)


def measure(endpoint, *, requests, cpu_us):
    for metric, value in {"requests": requests, "cpu_us": cpu_us}.items():
        EndpointCost.objects.create(endpoint=endpoint, hour=this_hour(), metric=metric, value=value)


def stripe_event(stripe_id, status, error=""):
    return StripeEvent.objects.create(
        stripe_id=stripe_id,
        type="invoice.paid",
        stripe_created=timezone.now(),
        payload={"id": stripe_id},
        status=status,
        error=error,
    )


@pytest.fixture
def tiers(db):
    return {
        "basic": Tier.objects.create(slug="basic", name="Basic", price=10, quota=1000, burst=5),
        "plus": Tier.objects.create(slug="plus", name="Plus", price=50, quota=100_000, burst=20),
    }


@pytest.fixture
def dataset(tiers):
    basic, plus = tiers["basic"], tiers["plus"]
    ann = make_customer("ann", basic, SubscriptionStatus.ACTIVE)
    ben = make_customer("ben", basic, SubscriptionStatus.PAST_DUE)
    cat = make_customer("cat", plus, SubscriptionStatus.TRIALING)
    dan = make_customer("dan", plus, SubscriptionStatus.CANCELED)
    make_customer("eve", plus, SubscriptionStatus.ACTIVE)
    bill(ann, "api:echo", 100)
    bill(ann, "api:echo", 50, days_ago=2)
    bill(ann, "api:echo", 40, days_ago=40)
    bill(ben, "api:echo", 50)
    bill(cat, "api:primes", 400)
    bill(dan, "api:echo", 10)
    refuse(ann, 429, 30)
    refuse(ann, 429, 5, days_ago=40)
    refuse(ben, 402, 20)
    measure("api:echo", requests=1000, cpu_us=1000 * 1000)  # 1 ms: $0.000002 a request
    measure("api:primes", requests=100, cpu_us=100 * 100_000)  # 100 ms: $0.0002 a request
    stripe_event("evt_failed", EventStatus.FAILED, error="No such customer: cus_gone")
    stripe_event("evt_waiting", EventStatus.RECEIVED)
    stripe_event("evt_applied", EventStatus.APPLIED)
    stripe_event("evt_ignored", EventStatus.IGNORED)


def tier_row(dashboard, slug):
    return next(row for row in dashboard.tiers if row.tier.slug == slug)


# The figures


def test_requests_per_day_are_stacked_by_tier_over_30_days(dataset):
    chart = operator_dashboard().usage_chart
    assert len(chart["labels"]) == 30
    assert chart["labels"][-1] == timezone.now().date().isoformat()
    basic, plus = chart["datasets"]
    assert (basic["label"], basic["data"][-3:]) == ("Basic", [50, 0, 150])
    assert (plus["label"], plus["data"][-3:]) == ("Plus", [0, 0, 410])


def test_usage_is_charted_by_utc_day_in_a_time_zone_with_dst(tiers, settings):
    settings.TIME_ZONE = "Europe/Berlin"  # springs forward at 01:00 UTC on 2027-03-28
    ann = make_customer("ann", tiers["basic"], SubscriptionStatus.ACTIVE)
    key = api_key_create(customer=ann, name="laptop").api_key
    for hour, count in ((utc(2027, 3, 27, 23), 5), (utc(2027, 3, 28, 1), 7)):  # both the 28th in Berlin
        UsageRecord.objects.create(customer=ann, api_key=key, endpoint="api:echo", hour=hour, count=count)
    chart = operator_dashboard(days=2, now=utc(2027, 3, 28, 12)).usage_chart
    basic = next(dataset["data"] for dataset in chart["datasets"] if dataset["label"] == "Basic")
    assert (chart["labels"], basic) == (["2027-03-27", "2027-03-28"], [5, 7])


def test_tiers_come_in_display_order(dataset):
    Tier.objects.create(slug="aaa", name="Aaa", price=5, quota=10, burst=1, display_order=9)
    assert [row.tier.slug for row in operator_dashboard().tiers] == ["basic", "plus", "aaa"]


def test_billed_requests_per_tier_sum_the_window(dataset):
    dashboard = operator_dashboard()
    assert (tier_row(dashboard, "basic").units, tier_row(dashboard, "plus").units) == (200, 410)


def test_a_longer_window_counts_older_usage(dataset):
    dashboard = operator_dashboard(days=90)
    assert len(dashboard.usage_chart["labels"]) == 90
    assert tier_row(dashboard, "basic").units == 240


def test_a_week_window_has_seven_days(dataset):
    assert len(operator_dashboard(days=7).usage_chart["labels"]) == 7


def test_top_customers_are_ranked_by_usage_in_the_window(dataset):
    top = operator_dashboard().top_customers
    assert [(c.email, c.tier_name, c.units) for c in top] == [
        ("cat@example.com", "Plus", 400),
        ("ann@example.com", "Basic", 150),
        ("ben@example.com", "Basic", 50),
        ("dan@example.com", "Plus", 10),
    ]


def test_refusal_rates_are_refused_over_billed_plus_refused(dataset):
    basic = tier_row(operator_dashboard(), "basic")
    # 200 billed + 30 x 429 + 20 x 402 = 250 attempts
    assert (basic.refused_429, basic.refused_402) == (30, 20)
    assert (basic.percent_429, basic.percent_402) == (12.0, 8.0)


def test_a_tier_without_refusals_has_zero_rates(dataset):
    plus = tier_row(operator_dashboard(), "plus")
    assert (plus.percent_429, plus.percent_402) == (0.0, 0.0)


def test_a_tier_without_traffic_has_no_rate(tiers):
    assert tier_row(operator_dashboard(), "basic").percent_429 is None


def test_mrr_counts_active_trialing_and_past_due_customers(dataset):
    dashboard = operator_dashboard()
    basic, plus = tier_row(dashboard, "basic"), tier_row(dashboard, "plus")
    assert (basic.revenue.paying_customers, basic.revenue.mrr) == (2, Decimal("20.00"))
    assert (plus.revenue.paying_customers, plus.revenue.mrr) == (2, Decimal("100.00"))  # not dan: canceled
    assert dashboard.mrr_by_currency == {"usd": Decimal("120.00")}


def test_margins_come_from_the_cost_baselines(dataset):
    dashboard = operator_dashboard()
    basic, plus = tier_row(dashboard, "basic"), tier_row(dashboard, "plus")
    # Basic: 1,000 echo requests at $0.000002 = $0.002 against $10.
    assert basic.margin.cost_at_full_quota == Decimal("0.002")
    assert (basic.margin.ratio, basic.margin.under_floor) == (Decimal("5000.00"), False)
    # Plus: 400 primes + 10 echo per 410 requests = $0.00019517 a request, x 100,000.
    assert plus.margin.ratio == Decimal("2.56")
    assert plus.margin.under_floor


def test_served_cost_prices_the_windows_usage_at_the_tiers_mix(dataset):
    dashboard = operator_dashboard()
    assert tier_row(dashboard, "basic").served_cost == Decimal("0.0004")  # 200 x $0.000002
    # 400 x $0.0002 + 10 x $0.000002
    assert tier_row(dashboard, "plus").served_cost == pytest.approx(Decimal("0.08002"))


def test_served_cost_is_unknown_before_anything_is_measured(tiers):
    assert tier_row(operator_dashboard(), "plus").served_cost is None


def test_webhooks_that_failed_or_wait_are_listed_and_counted(dataset):
    webhooks = operator_dashboard().webhooks
    assert (webhooks.failed, webhooks.waiting) == (1, 1)
    assert {event.stripe_id for event in webhooks.events} == {"evt_failed", "evt_waiting"}


# Query counts


def test_the_figures_take_a_fixed_number_of_queries(dataset, django_assert_num_queries):
    # tiers with margins (3), usage by day, top customers, refusals, MRR, webhook counts and rows
    with django_assert_num_queries(9):
        operator_dashboard()


def test_more_tiers_and_customers_take_no_more_queries(dataset, tiers, django_assert_num_queries):
    extra = Tier.objects.create(slug="max", name="Max", price=90, quota=10, burst=1)
    for n in range(5):
        customer = make_customer(f"extra{n}", extra, SubscriptionStatus.ACTIVE)
        bill(customer, "api:echo", n + 1)
        refuse(customer, 429, 1)
        stripe_event(f"evt_extra{n}", EventStatus.FAILED)
    with django_assert_num_queries(9):
        operator_dashboard()


def test_the_page_takes_a_bounded_number_of_queries(admin_client, dataset, django_assert_max_num_queries):
    admin_client.get(URL)  # warm the session and permission caches of this client
    with django_assert_max_num_queries(12):
        assert admin_client.get(URL).status_code == 200


# The page


def test_staff_see_the_dashboard_in_the_admin(admin_client, dataset):
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert response.context["title"] == "Operator dashboard"
    assert b'<div class="breadcrumbs">' in response.content
    assert b'href="/admin/">Home</a>' in response.content


def test_staff_without_superuser_rights_see_it_too(client, dataset):
    user = get_user_model().objects.create_user(username="ops", password="x", is_staff=True)
    client.force_login(user)
    assert client.get(URL).status_code == 200


def test_the_page_shows_each_tiers_figures(admin_client, dataset):
    content = admin_client.get(URL).content.decode()
    for figure in ("12.0%", "8.0%", "20.00", "100.00", "2.56x", "5,000.00x", "under 3x"):
        assert figure in content


def test_the_page_shows_the_top_customers_and_failed_webhooks(admin_client, dataset):
    content = admin_client.get(URL).content.decode()
    assert "cat@example.com" in content
    assert "evt_failed" in content and "No such customer: cus_gone" in content
    assert "evt_waiting" in content
    assert "evt_applied" not in content


def test_the_chart_data_is_embedded_as_json_for_the_vendored_chart_js(admin_client, dataset):
    content = admin_client.get(URL).content.decode()
    assert '<script id="usage-by-day-data" type="application/json">' in content
    assert 'src="/static/vendor/chart.umd.min.js"' in content
    assert '<canvas id="usage-by-day"' in content


def test_the_window_is_chosen_with_days(admin_client, dataset):
    assert admin_client.get(URL, {"days": "7"}).context["dashboard"].window.days == 7


def test_an_unknown_window_falls_back_to_30_days(admin_client, dataset):
    assert admin_client.get(URL, {"days": "3650"}).context["dashboard"].window.days == 30


def test_the_page_only_answers_reads(admin_client, db):
    assert admin_client.post(URL).status_code == 405


def test_the_admin_index_links_to_the_dashboard(admin_client, db):
    assert b'href="/admin/dashboard/"' in admin_client.get("/admin/").content


# Who may see it


def test_anonymous_visitors_are_sent_to_the_admin_login(client, dataset):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/dashboard/"


def test_users_who_are_not_staff_are_sent_to_the_admin_login(client, dataset):
    client.force_login(get_user_model().objects.get(username="ann"))
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/dashboard/"
    assert b"ann@example.com" not in response.content


# Revenue and customers are for operators allowed to see them

CUSTOMER_EMAILS = ("ann@example.com", "ben@example.com", "cat@example.com", "dan@example.com")
REVENUE_MARKUP = ('id="figure-mrr-usd"', 'class="num mrr"', 'class="num paying"', 'id="top-customers"')


def test_a_view_only_staff_user_sees_usage_but_no_revenue_and_no_customer_emails(view_only_client, dataset):
    response = view_only_client.get(URL)
    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="figure-units"' in content and 'id="tier-basic"' in content
    for hidden in CUSTOMER_EMAILS + REVENUE_MARKUP:
        assert hidden not in content
    dashboard = response.context["dashboard"]
    assert dashboard.top_customers == [] and dashboard.mrr_by_currency == {}
    assert all(row.revenue is None for row in dashboard.tiers)
    assert "Can view revenue" in content  # says what to ask for


def test_staff_with_the_revenue_permission_see_revenue_and_top_customers(client, dataset, django_user_model):
    revenue = Permission.objects.get(content_type__app_label="plans", codename="view_revenue")
    client.force_login(staff_user(django_user_model, "fay", revenue))
    content = client.get(URL).content.decode()
    for shown in CUSTOMER_EMAILS + REVENUE_MARKUP:
        assert shown in content


def test_superusers_see_revenue_without_being_given_the_permission(admin_client, dataset):
    content = admin_client.get(URL).content.decode()
    assert 'id="figure-mrr-usd"' in content and "cat@example.com" in content


def test_staff_who_may_not_view_stripe_events_see_none_listed(client, dataset, django_user_model):
    client.force_login(staff_user(django_user_model, "ned"))
    content = client.get(URL).content.decode()
    assert 'id="figure-webhooks-failed"' in content  # the counts stay: they name nobody
    assert "evt_failed" not in content and "No such customer" not in content


# Where the usage comes from, as the deployment really has it


def test_on_the_embedded_default_the_dashboard_does_not_speak_of_redis(admin_client, db, settings):
    settings.REDIS_URL = ""  # the embedded default: the in-process limiter writes usage itself
    content = admin_client.get(URL).content.decode()
    assert "Redis" not in content
    assert "usage as recorded, at once" in content


def test_with_redis_the_dashboard_says_usage_arrives_with_each_flush(admin_client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/3"
    settings.CELERY_BEAT_SCHEDULE = {
        "flush-usage": {"task": "metering.tasks.flush_usage_task", "schedule": 60.0}
    }
    content = admin_client.get(URL).content.decode()
    assert "usage as flushed from Redis, every 60 s" in content
