from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Concurrently: the log may already hold millions of rows, and the flush
    # writes to it every minute; a plain CREATE INDEX would block it meanwhile.
    atomic = False

    dependencies = [
        ("metering", "0005_usage_customer_protect"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="flushedbatch",
            index=models.Index(fields=["flushed_at"], name="flushed_batch_flushed_at"),
        ),
    ]
