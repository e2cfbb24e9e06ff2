from django.core.management.base import BaseCommand

from metering.reports import MARGIN_FLOOR, tier_margins


class Command(BaseCommand):
    help = (
        f"Per tier: price against the cost of serving its full quota; flags paid tiers under {MARGIN_FLOOR}x."
    )

    def handle(self, *args, **options):
        self.stdout.write(
            f"{'tier':<14}{'price':>10}{'units/month':>14}{'cost at quota':>15}{'ratio':>9}  flag"
        )
        for m in tier_margins():
            ratio = f"{m.ratio}x" if m.ratio is not None else "n/a"
            if m.under_floor:
                flag = f"UNDER {MARGIN_FLOOR}x"
            elif not m.is_paid:
                flag = f"free: {m.customers} customers cost up to ${m.free_tier_total_cost:.2f}/month"
            elif m.ratio is None:
                flag = "no cost measured yet"
            else:
                flag = "ok"
            self.stdout.write(
                f"{m.tier.slug:<14}{m.tier.price:>10}{m.monthly_units:>14}"
                f"{m.cost_at_full_quota:>15.2f}{ratio:>9}  {flag}"
            )
