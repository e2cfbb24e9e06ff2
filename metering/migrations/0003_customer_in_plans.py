"""The customer foreign keys now point at plans.Customer (the same table)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('metering', '0002_refusal_record'),
        ('plans', '0001_initial'),
    ]

    operations = [
        # The tables stay where they are (plans' models keep their db_table):
        # only Django's idea of which app owns the models moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='quotaalert',
                    name='customer',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='quota_alerts', to='plans.customer'),
                ),
                migrations.AlterField(
                    model_name='refusalrecord',
                    name='customer',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='refusals', to='plans.customer'),
                ),
                migrations.AlterField(
                    model_name='usagerecord',
                    name='customer',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_records', to='plans.customer'),
                ),
            ],
            database_operations=[],
        ),
    ]
