from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgreSQL(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL; a plain index elsewhere (the
    embedded default's SQLite, which `make run` migrates)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    # Concurrently: the log may already hold millions of rows, and the flush
    # writes to it every minute; a plain CREATE INDEX would block it meanwhile.
    atomic = False

    dependencies = [
        ("metering", "0005_usage_customer_protect"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="flushedbatch",
            index=models.Index(fields=["flushed_at"], name="flushed_batch_flushed_at"),
        ),
    ]
