from django.core.management.base import BaseCommand, CommandError

from apikeys.services import api_key_create
from core.errors import AppError
from plans.services import DEFAULT_TIER_SLUG, customer_get_or_create


class Command(BaseCommand):
    help = (
        "Create an API key for a customer, creating the user and customer when missing. "
        "Prints the raw key alone on the last line; it is not stored and cannot be shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument(
            "--tier", default=DEFAULT_TIER_SLUG, help="Tier of a new customer (default: free)."
        )
        parser.add_argument("--name", default="Default key", help="A label for the key.")

    def handle(self, *args, email, tier, name, **options):
        try:
            customer, created = customer_get_or_create(email=email, tier_slug=tier)
        except AppError as error:
            raise CommandError(error.detail) from None
        if created:
            self.stderr.write(f"Created customer {customer} on tier {customer.tier.slug}.")
        elif customer.tier.slug != tier:
            self.stderr.write(f"Customer {customer} exists on tier {customer.tier.slug}; kept it.")
        try:
            created_key = api_key_create(customer=customer, name=name)
        except AppError as error:  # the limit of active keys, a name with nothing visible
            raise CommandError(error.detail) from None
        self.stderr.write(f"Created key '{name}' ({created_key.api_key.prefix}...). Store it now:")
        self.stdout.write(created_key.raw_key)
