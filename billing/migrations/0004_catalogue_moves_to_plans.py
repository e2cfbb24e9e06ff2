"""Tier and Customer leave billing for plans (the tables stay)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('apikeys', '0002_customer_in_plans'),
        ('billing', '0003_stripe_billing'),
        ('metering', '0003_customer_in_plans'),
        ('plans', '0001_initial'),
    ]

    operations = [
        # The tables stay where they are (plans' models keep their db_table):
        # only Django's idea of which app owns the models moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='customer',
                    name='tier',
                ),
                migrations.RemoveField(
                    model_name='customer',
                    name='user',
                ),
                migrations.AlterField(
                    model_name='overagereport',
                    name='customer',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='overage_reports', to='plans.customer'),
                ),
                migrations.DeleteModel(
                    name='Tier',
                ),
                migrations.DeleteModel(
                    name='Customer',
                ),
            ],
            database_operations=[],
        ),
    ]
