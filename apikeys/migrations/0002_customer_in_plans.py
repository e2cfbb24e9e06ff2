"""APIKey.customer now points at plans.Customer (the same table)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('apikeys', '0001_initial'),
        ('plans', '0001_initial'),
    ]

    operations = [
        # The tables stay where they are (plans' models keep their db_table):
        # only Django's idea of which app owns the models moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='apikey',
                    name='customer',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_keys', to='plans.customer'),
                ),
            ],
            database_operations=[],
        ),
    ]
