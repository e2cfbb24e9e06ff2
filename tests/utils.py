"""Helpers shared by tests that are not fixtures."""

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone

from apikeys.services import api_key_create
from metering.models import UsageRecord
from plans.models import SubscriptionStatus


def manage_py(*args: str) -> "subprocess.CompletedProcess[str]":
    """Run manage.py in a child process against the test database."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stop(process: "subprocess.Popen") -> None:
    """Terminate a child process, killing it if it does not stop in 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def staff_user(django_user_model, username: str, *permissions: Permission):
    """A staff user (not a superuser) holding exactly `permissions`."""
    user = django_user_model.objects.create_user(
        username, f"{username}@example.com", "staff password", is_staff=True
    )
    user.user_permissions.set(permissions)
    return user


def view_permissions() -> list[Permission]:
    """Django's own view permission of every model, and nothing else."""
    return [
        permission
        for permission in Permission.objects.select_related("content_type")
        if permission.codename == f"view_{permission.content_type.model}"
    ]


class FakeClock:
    """A monotonic clock the test moves by hand (`clock.now += 1.0`)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@dataclass(frozen=True)
class MonthEnd:
    """Half a minute before a calendar month ends, where a 30-day month, a
    forgotten leap day or a year that does not roll over shows up."""

    month_start: datetime
    month_end: datetime  # the next month's first instant
    next_month_end: datetime

    @property
    def moment(self) -> datetime:
        return self.month_end - timedelta(seconds=30)

    @property
    def seconds(self) -> int:
        return round((self.month_end - self.month_start).total_seconds())

    @property
    def next_seconds(self) -> int:
        return round((self.next_month_end - self.month_end).total_seconds())


# Months of 31, 28 (a common year), 29 (a leap year) and 30 days, and a
# December: every length, and the year's change. For pytest.mark.parametrize.
MONTH_ENDS = {
    "jan-31": MonthEnd(utc(2027, 1, 1), utc(2027, 2, 1), utc(2027, 3, 1)),
    "feb-28": MonthEnd(utc(2027, 2, 1), utc(2027, 3, 1), utc(2027, 4, 1)),
    "feb-29": MonthEnd(utc(2028, 2, 1), utc(2028, 3, 1), utc(2028, 4, 1)),
    "apr-30": MonthEnd(utc(2027, 4, 1), utc(2027, 5, 1), utc(2027, 6, 1)),
    "dec-31": MonthEnd(utc(2027, 12, 1), utc(2028, 1, 1), utc(2028, 2, 1)),
}


def month_ends(name: str = "edge"):
    """Parametrize a test over MONTH_ENDS, ids as the keys."""
    return pytest.mark.parametrize(name, list(MONTH_ENDS.values()), ids=list(MONTH_ENDS))


def run_together(count: int, function) -> list:
    """`function` in `count` threads released at once, each closing its
    database connection after: what each returned, or the exception it raised."""
    barrier, outcomes = threading.Barrier(count), []

    def run():
        try:
            barrier.wait()
            outcomes.append(function())
        except BaseException as error:
            outcomes.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def paying_customer_with_usage(customer):
    """`customer` active at Stripe, with 100 requests an hour for the 300
    hours before this one (30,000 in the last 30 days)."""
    customer.subscription_status = SubscriptionStatus.ACTIVE
    customer.save()
    key = api_key_create(customer=customer, name="server").api_key
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    UsageRecord.objects.bulk_create(
        UsageRecord(
            customer=customer, api_key=key, endpoint="echo", hour=hour - timedelta(hours=hours), count=100
        )
        for hours in range(1, 301)
    )
    return customer
