from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.services import tiers_sync
from billing.tiers_file import TiersFileError, read_tiers_file


class Command(BaseCommand):
    help = (
        "Create or update tiers from a TOML tiers file (default: tiers.toml at the "
        "project root). Tiers not in the file are left alone. All or nothing: a bad "
        "file changes nothing and exits non-zero."
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
