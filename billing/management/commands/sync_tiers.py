from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.models import StripeSync, SyncStatus
from billing.stripe_api import is_configured
from billing.sync import catalog_sync_queue
from billing.tasks import run_stripe_sync
from plans.models import Tier
from plans.services import TierAction, tiers_sync
from plans.tiers_file import TiersFileError, read_tiers_file

DEFAULT_FILE = str(settings.BASE_DIR / "tiers.toml")


class Command(BaseCommand):
    help = (
        "Create the tiers of a TOML tiers file (default: tiers.toml at the project "
        "root) that do not exist yet. A tier that exists is kept as stored (an "
        "operator may have edited it in admin) and what differs from the file is "
        "printed; --force overwrites it with the file. Tiers not in the file are "
        "left alone. All or nothing: a bad file changes nothing and exits non-zero. "
        "With STRIPE_SECRET_KEY set, also creates or finds each paid tier's Stripe "
        "Product and Prices for its stored values (idempotent)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default=DEFAULT_FILE)
        parser.add_argument(
            "--force",
            action="store_true",
            help="Overwrite the tiers that exist with the file's values, printing what changed.",
        )

    def handle(self, *args, file, force, **options):
        try:
            changes = tiers_sync(declared_tiers=read_tiers_file(Path(file)), force=force)
        except TiersFileError as error:
            raise CommandError(f"{file}: nothing was changed.\n{error}") from None
        for change in changes:
            line = change.describe()
            self.stdout.write(self.style.WARNING(line) if change.action == TierAction.KEPT else line)
        counts = {action: sum(c.action == action for c in changes) for action in TierAction}
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(changes)} tiers: {counts[TierAction.CREATED]} created, {counts[TierAction.UPDATED]} "
                f"updated, {counts[TierAction.KEPT]} kept, {counts[TierAction.UNCHANGED]} unchanged"
            )
        )
        if counts[TierAction.KEPT]:
            self.stdout.write(
                "Kept tiers keep their stored values (edited in admin since?). To overwrite them "
                "with the file: python manage.py sync_tiers --force"
                + ("" if file == DEFAULT_FILE else f" {file}")
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
