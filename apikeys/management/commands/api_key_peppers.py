from django.core.management.base import BaseCommand

from apikeys.peppers import accepted_versions
from apikeys.selectors import api_keys_active_by_pepper_version


def _keys(count: int) -> str:
    return f"{count} active key" + ("" if count == 1 else "s")


class Command(BaseCommand):
    help = (
        "Active API keys by the pepper version that hashes them, newest version first. An older "
        "pepper can be removed from API_KEY_OLD_PEPPERS once no active key is left on it: keys "
        "move to the current pepper the first time they are used under it."
    )

    def handle(self, *args, **options):
        counts = api_keys_active_by_pepper_version()
        roles = accepted_versions()
        for version in sorted(roles.keys() | counts.keys(), reverse=True):
            role = roles.get(version, "missing")
            line = f"v{version}  {role:<8}  {_keys(counts.get(version, 0))}"
            if role == "missing":
                line += " (these no longer authenticate)"
            self.stdout.write(line)
