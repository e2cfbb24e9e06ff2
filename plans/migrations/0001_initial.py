"""Tier and Customer, moved from billing: the plan catalogue gets its own app."""

import django.core.validators
import django.db.models.deletion
import django.db.models.functions.text
import django.db.models.lookups
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


MOVED = ("tier", "customer")


def move_content_types(apps, schema_editor):
    """Keep permissions granted on tiers and customers (and admin history)."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="billing", model__in=MOVED).update(app_label="plans")


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="plans", model__in=MOVED).update(app_label="billing")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('billing', '0003_stripe_billing'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The tables stay where they are (plans' models keep their db_table):
        # only Django's idea of which app owns the models moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Tier',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('slug', models.SlugField(unique=True)),
                        ('name', models.CharField(max_length=100)),
                        ('price', models.DecimalField(decimal_places=2, help_text='Flat price per billing period.', max_digits=10, validators=[django.core.validators.MinValueValidator(Decimal('0'))])),
                        ('currency', models.CharField(default='usd', max_length=3, validators=[django.core.validators.RegexValidator('^[a-z]{3}$', 'Use a lowercase ISO 4217 code, e.g. usd.')])),
                        ('quota', models.PositiveBigIntegerField(help_text='Billable requests per quota period.', validators=[django.core.validators.MinValueValidator(1)])),
                        ('quota_period', models.CharField(choices=[('minute', 'per minute'), ('hour', 'per hour'), ('day', 'per day'), ('month', 'per month')], default='month', max_length=10)),
                        ('burst', models.PositiveIntegerField(help_text='Requests per second.', validators=[django.core.validators.MinValueValidator(1)])),
                        ('overage_price_per_1000', models.DecimalField(blank=True, decimal_places=4, help_text='Price per 1,000 requests over the quota. Empty or 0: a hard limit.', max_digits=10, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))])),
                        ('stripe_product_id', models.CharField(blank=True, max_length=255)),
                        ('stripe_price_id', models.CharField(blank=True, help_text='The flat monthly price.', max_length=255)),
                        ('stripe_overage_price_id', models.CharField(blank=True, help_text='The metered price of usage over the quota.', max_length=255)),
                        ('is_public', models.BooleanField(default=True, help_text='Shown on the pricing page.')),
                        ('is_active', models.BooleanField(default=True, help_text='Open to new subscriptions.')),
                        ('display_order', models.PositiveSmallIntegerField(default=0)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'billing_tier',
                        'ordering': ['display_order', 'price', 'slug'],
                        'constraints': [models.CheckConstraint(condition=models.Q(('price__gte', 0)), name='tier_price_not_negative'), models.CheckConstraint(condition=models.Q(('quota__gte', 1)), name='tier_quota_positive'), models.CheckConstraint(condition=models.Q(('burst__gte', 1)), name='tier_burst_positive'), models.CheckConstraint(condition=models.Q(('quota_period__in', ['minute', 'hour', 'day', 'month'])), name='tier_quota_period_valid'), models.CheckConstraint(condition=models.Q(('overage_price_per_1000__isnull', True), ('overage_price_per_1000__gte', 0), _connector='OR'), name='tier_overage_price_not_negative'), models.CheckConstraint(condition=models.Q(django.db.models.lookups.Exact(django.db.models.functions.text.Length('currency'), 3), django.db.models.lookups.Exact(django.db.models.functions.text.Lower('currency'), models.F('currency'))), name='tier_currency_lowercase_iso_code')],
                    },
                ),
                migrations.CreateModel(
                    name='Customer',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('stripe_customer_id', models.CharField(blank=True, max_length=255)),
                        ('stripe_subscription_id', models.CharField(blank=True, max_length=255)),
                        ('subscription_status', models.CharField(choices=[('none', 'No subscription'), ('incomplete', 'Incomplete'), ('incomplete_expired', 'Incomplete, expired'), ('trialing', 'Trialing'), ('active', 'Active'), ('past_due', 'Past due'), ('canceled', 'Canceled'), ('unpaid', 'Unpaid'), ('paused', 'Paused')], default='none', max_length=20)),
                        ('current_period_start', models.DateTimeField(blank=True, null=True)),
                        ('current_period_end', models.DateTimeField(blank=True, null=True)),
                        ('quota_override', models.PositiveBigIntegerField(blank=True, help_text="Replaces the tier's quota.", null=True, validators=[django.core.validators.MinValueValidator(1)])),
                        ('burst_override', models.PositiveIntegerField(blank=True, help_text="Replaces the tier's burst.", null=True, validators=[django.core.validators.MinValueValidator(1)])),
                        ('overage_spending_cap', models.DecimalField(blank=True, decimal_places=2, help_text='Most overage billed per month; at the cap, requests over the quota get 429. Empty: none.', max_digits=10, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))])),
                        ('cancel_at_period_end', models.BooleanField(default=False)),
                        ('subscription_event_at', models.DateTimeField(blank=True, null=True)),
                        ('past_due_since', models.DateTimeField(blank=True, null=True)),
                        ('past_due_warned_at', models.DateTimeField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='customer', to=settings.AUTH_USER_MODEL)),
                        ('tier', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='customers', to='plans.tier')),
                    ],
                    options={
                        'db_table': 'billing_customer',
                        'constraints': [models.CheckConstraint(condition=models.Q(('quota_override__isnull', True), ('quota_override__gte', 1), _connector='OR'), name='customer_quota_override_positive'), models.CheckConstraint(condition=models.Q(('burst_override__isnull', True), ('burst_override__gte', 1), _connector='OR'), name='customer_burst_override_positive'), models.CheckConstraint(condition=models.Q(('overage_spending_cap__isnull', True), ('overage_spending_cap__gte', 0), _connector='OR'), name='customer_overage_spending_cap_not_negative'), models.UniqueConstraint(condition=models.Q(('stripe_customer_id', ''), _negated=True), fields=('stripe_customer_id',), name='customer_stripe_customer_id_unique'), models.UniqueConstraint(condition=models.Q(('stripe_subscription_id', ''), _negated=True), fields=('stripe_subscription_id',), name='customer_stripe_subscription_id_unique'), models.CheckConstraint(condition=models.Q(('subscription_status__in', ['none', 'incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'])), name='customer_subscription_status_valid'), models.CheckConstraint(condition=models.Q(('current_period_start__isnull', True), ('current_period_end__isnull', True), ('current_period_end__gt', models.F('current_period_start')), _connector='OR'), name='customer_period_ends_after_start')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
