"""Reading a tiers file: TOML with one `[tiers.<slug>]` table per tier.

This module only checks the file's shape (known keys, required keys, value
types); the values themselves are validated by the Tier model, so the rules
live in one place and admin and the file agree.
"""

import tomllib
from pathlib import Path

REQUIRED_FIELDS = ("name", "price", "currency", "quota", "quota_period", "burst")
OPTIONAL_FIELDS = (
    "overage_price_per_1000",
    "stripe_price_id",
    "is_public",
    "is_active",
    "display_order",
)
# TOML types each field accepts. bool is excluded from the integer fields by
# hand below, since True is an int in Python.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "price": (str, int, float),
    "currency": (str,),
    "quota": (int,),
    "quota_period": (str,),
    "burst": (int,),
    "overage_price_per_1000": (str, int, float),
    "stripe_price_id": (str,),
    "is_public": (bool,),
    "is_active": (bool,),
    "display_order": (int,),
}
# What an optional field left out of a table means. Every optional field but
# stripe_price_id has one, so a forced sync leaves no admin value of a field
# the file does not name (no mix of both: "absent" overage is a hard limit).
# stripe_price_id has none: the Stripe catalog sync sets it.
ABSENT_MEANS: dict[str, object] = {
    "overage_price_per_1000": None,
    "is_public": True,
    "is_active": True,
    "display_order": 0,
}
TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


class TiersFileError(Exception):
    """The file cannot be applied; the message names the tier and the field."""


def _type_error(slug: str, field: str, value) -> str | None:
    expected = FIELD_TYPES[field]
    if isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected):
        return None
    wanted = " or ".join(TYPE_NAMES[t] for t in expected)
    return f"tier '{slug}', field '{field}': expected {wanted}, got {value!r}"


def check_tier_table(slug: str, table) -> list[str]:
    """Problems with one tier's table, as messages naming tier and field."""
    if not isinstance(table, dict):
        return [f"tier '{slug}': expected a table [tiers.{slug}], got {table!r}"]
    problems = [
        f"tier '{slug}', field '{field}': unknown field (allowed: "
        f"{', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})"
        for field in table
        if field not in FIELD_TYPES
    ]
    problems += [
        f"tier '{slug}', field '{field}': missing (required)"
        for field in REQUIRED_FIELDS
        if field not in table
    ]
    problems += [
        message
        for field, value in table.items()
        if field in FIELD_TYPES and (message := _type_error(slug, field, value))
    ]
    return problems


def parse_tiers(text: str, source: str = "tiers file") -> dict[str, dict]:
    """The tiers declared in TOML text, by slug. Raises TiersFileError."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TiersFileError(f"{source}: not valid TOML: {error}") from None

    unknown_top = [key for key in document if key != "tiers"]
    if unknown_top:
        raise TiersFileError(f"{source}: unknown top-level key '{unknown_top[0]}' (expected [tiers.<slug>])")
    tiers = document.get("tiers")
    if not isinstance(tiers, dict) or not tiers:
        raise TiersFileError(f"{source}: no tiers declared (expected [tiers.<slug>] tables)")

    problems = [problem for slug, table in tiers.items() for problem in check_tier_table(slug, table)]
    if problems:
        raise TiersFileError("\n".join(problems))
    return {
        slug: table | {k: v for k, v in ABSENT_MEANS.items() if k not in table}
        for slug, table in tiers.items()
    }


def read_tiers_file(path: Path) -> dict[str, dict]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TiersFileError(f"{path}: cannot read: {error}") from None
    return parse_tiers(text, source=str(path))
