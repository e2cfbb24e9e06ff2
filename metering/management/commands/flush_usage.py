from django.core.management.base import BaseCommand

from metering.flush import flush_usage


class Command(BaseCommand):
    help = "Move pending usage counts from Redis to PostgreSQL now (the beat task does it every minute)."

    def handle(self, *args, **options):
        result = flush_usage()
        self.stdout.write(f"Flushed {result.units} billable units for {result.customers} customers.")
