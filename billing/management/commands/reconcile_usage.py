from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.usage_reconcile import CURRENT, PREVIOUS, usage_reconcile

COLUMNS = ("customer", "period", "counter", "pending", "ledger", "expected", "reported", "stripe", "drift")


def parse_period(value: str) -> str | datetime:
    if value in (CURRENT, PREVIOUS):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--period {value!r}: use current, previous or a date (2027-06-15).") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cell(value) -> str:
    return "-" if value is None else str(value)


class Command(BaseCommand):
    help = (
        "Compare each customer's usage per quota period across Redis (the quota counter and "
        "pending usage), the PostgreSQL ledger and Stripe's Billing Meter, print a drift table, "
        "record the run (admin: usage reconcile runs) and exit non-zero on any drift."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--period",
            action="append",
            type=parse_period,
            help="current, previous or a date inside the period; repeatable (default: previous and current).",
        )

    def handle(self, *args, period, **options):
        result = usage_reconcile(now=timezone.now(), periods=period or (PREVIOUS, CURRENT))
        if not result.run.stripe_checked:
            self.stdout.write("Stripe is not configured: the Stripe column is skipped.")
        self._table(result.rows)
        summary = f"{result.run.rows_checked} customer periods, {result.run.drifting_rows} drifting"
        if result.drifting:
            raise CommandError(f"Usage drift: {summary} (usage reconcile run {result.run.pk}).")
        self.stdout.write(self.style.SUCCESS(f"No drift: {summary}."))

    def _table(self, rows) -> None:
        lines = [COLUMNS]
        for row in rows:
            period = f"{row.period_start:%Y-%m-%d %H:%M}..{row.period_end:%Y-%m-%d %H:%M}"
            figures = (row.counter, row.pending, row.ledger, row.expected_overage)
            figures += (row.reported_overage, row.stripe_overage)
            drift = f"yes: {', '.join(row.drifts)}" if row.drifts else "no"
            lines.append((row.customer, period, *map(_cell, figures), drift))
        widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
        for line in lines:
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            )
