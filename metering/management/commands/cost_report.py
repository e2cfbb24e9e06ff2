from django.core.management.base import BaseCommand

from metering.cost import UnitPrices
from metering.reports import REPORT_WINDOW, endpoint_costs


class Command(BaseCommand):
    help = f"Per endpoint: measured cost of serving a request over the last {REPORT_WINDOW.days} days."

    def handle(self, *args, **options):
        prices = UnitPrices.from_settings()
        self.stdout.write(
            f"Unit prices: ${prices.per_cpu_ms} per CPU ms, ${prices.per_kb_out} per KB out, "
            f"${prices.per_third_party_call} per third-party call"
        )
        self.stdout.write(
            f"{'endpoint':<24}{'sampled':>10}{'cpu ms':>9}{'p95 ms':>9}"
            f"{'KB out':>9}{'3rd/req':>9}{'$/1000':>11}"
        )
        summaries = endpoint_costs(prices=prices)
        for s in summaries:
            self.stdout.write(
                f"{s.endpoint:<24}{s.requests:>10}{s.mean_cpu_ms:>9.2f}{s.p95_cpu_ms:>9.2f}"
                f"{s.mean_kb_out:>9.2f}{s.third_party_calls_per_request:>9.2f}{s.cost_per_1000:>11.5f}"
            )
        if not summaries:
            self.stdout.write("No samples yet: serve some API traffic, then run flush_usage.")
