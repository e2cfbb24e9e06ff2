"""Stored hashes carry their pepper's version: "v1$<hex>".

Every hash stored before was made with the one pepper there was
(API_KEY_PEPPER, or SECRET_KEY when it was unset), which becomes version 1:
API_KEY_PEPPER_VERSION's default.
"""

from django.db import migrations, models
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr


def mark_as_version_1(apps, schema_editor):
    APIKey = apps.get_model("apikeys", "APIKey")
    APIKey.objects.exclude(hashed_key__contains="$").update(hashed_key=Concat(Value("v1$"), F("hashed_key")))


def unmark_version_1(apps, schema_editor):
    APIKey = apps.get_model("apikeys", "APIKey")
    if APIKey.objects.filter(hashed_key__contains="$").exclude(hashed_key__startswith="v1$").exists():
        raise RuntimeError("Keys hashed with a pepper other than version 1 cannot be stored without a version.")
    APIKey.objects.filter(hashed_key__startswith="v1$").update(hashed_key=Substr("hashed_key", 4))


class Migration(migrations.Migration):

    dependencies = [
        ("apikeys", "0002_customer_in_plans"),
    ]

    operations = [
        migrations.AlterField(
            model_name="apikey",
            name="hashed_key",
            field=models.CharField(editable=False, max_length=80, unique=True),
        ),
        migrations.RunPython(mark_as_version_1, unmark_version_1),
    ]
