from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.models import StripeSync, SyncStatus
from billing.stripe_api import is_configured
from billing.sync import catalog_sync_queue
from billing.tasks import run_stripe_sync
from plans.models import Tier
from plans.services import tiers_sync
from plans.tiers_file import TiersFileError, read_tiers_file


class Command(BaseCommand):
    help = (
        "Create or update tiers from a TOML tiers file (default: tiers.toml at the "
        "project root). Tiers not in the file are left alone. All or nothing: a bad "
        "file changes nothing and exits non-zero. With STRIPE_SECRET_KEY set, also "
        "creates or finds each paid tier's Stripe Product and Prices (idempotent)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default=str(settings.BASE_DIR / "tiers.toml"))

    def handle(self, *args, file, **options):
        try:
            changes = tiers_sync(declared_tiers=read_tiers_file(Path(file)))
        except TiersFileError as error:
            raise CommandError(f"{file}: nothing was changed.\n{error}") from None
        for change in changes:
            self.stdout.write(change.describe())
        counts = {
            action: sum(c.action == action for c in changes) for action in ("created", "updated", "unchanged")
        }
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(changes)} tiers: {counts['created']} created, {counts['updated']} updated, "
                f"{counts['unchanged']} unchanged"
            )
        )
        if is_configured():
            self._sync_stripe_catalog([change.slug for change in changes])

    def _sync_stripe_catalog(self, slugs: list[str]) -> None:
        failed = []
        for tier in Tier.objects.filter(slug__in=slugs, price__gt=0):
            sync = catalog_sync_queue(tier)
            # Now, in this process, so the operator sees the outcome; the queued
            # copy finds the sync succeeded and does nothing.
            run_stripe_sync.apply(args=[sync.pk], throw=False)
            sync = StripeSync.objects.get(pk=sync.pk)
            tier.refresh_from_db()
            if sync.status == SyncStatus.SUCCEEDED:
                overage = f", overage {tier.stripe_overage_price_id}" if tier.stripe_overage_price_id else ""
                ids = f"{tier.stripe_product_id}, price {tier.stripe_price_id}{overage}"
                self.stdout.write(f"stripe: {tier.slug} -> {ids}")
            else:
                failed.append(f"{tier.slug}: {sync.error}")
        if failed:
            problems = "\n".join(failed)
            raise CommandError(f"Tiers saved, but the Stripe catalog sync failed (run again):\n{problems}")
