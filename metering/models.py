from django.db import models


class UsageRecord(models.Model):
    """Billable units served to one customer, by key, endpoint and hour (UTC).

    `hour` is the bucket's start: the UTC hour, or the quota period's start
    when the period began inside that hour (metering.keys.usage_bucket), so a
    row never straddles a period and a period's usage is `start <= hour < end`.

    Rows only grow, by the usage flush (metering/flush.py) or, on the embedded
    default, by each request directly. A unique row per (customer, key,
    endpoint, hour) lets the flush add with one upsert.
    """

    # PROTECT and RESTRICT: a customer or key with billed usage is revoked,
    # never deleted from under it (metering/protection.py guards usage still
    # pending in Redis).
    customer = models.ForeignKey("plans.Customer", on_delete=models.PROTECT, related_name="usage_records")
    api_key = models.ForeignKey("apikeys.APIKey", on_delete=models.RESTRICT, related_name="usage_records")
    endpoint = models.CharField(max_length=200)
    hour = models.DateTimeField(help_text="Start of the UTC hour, or of the quota period begun inside it.")
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "api_key", "endpoint", "hour"], name="usage_record_unique"
            ),
        ]
        indexes = [models.Index(fields=["customer", "hour"])]

    def __str__(self):
        return f"{self.customer_id} {self.endpoint} {self.hour:%Y-%m-%d %H:00}: {self.count}"


class FlushedBatch(models.Model):
    """A Redis snapshot already added to UsageRecord: the flush's idempotency log."""

    batch = models.CharField(max_length=200, unique=True)
    flushed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Each flush deletes the rows past their retention: one per active
        # customer a minute arrives, so they are found by index, not by scan.
        indexes = [models.Index(fields=["flushed_at"], name="flushed_batch_flushed_at")]

    def __str__(self):
        return self.batch


class CostMetric(models.TextChoices):
    """EndpointCost.metric: the totals. The histogram's metrics are named apart
    (CPU_BUCKET_PREFIX), one per bucket."""

    REQUESTS = "requests", "requests sampled"
    CPU_US = "cpu_us", "CPU microseconds"
    BYTES_OUT = "bytes_out", "bytes out"
    THIRD_PARTY_CALLS = "third_party_calls", "third-party calls"


# cpu_b<i>: requests whose CPU time fell in histogram bucket i (metering.cost.CPU_BUCKETS_MS)
CPU_BUCKET_PREFIX = "cpu_b"


class EndpointCost(models.Model):
    """Measured serving cost of one endpoint in one hour, one metric per row.

    One row per metric keeps the flush a single kind of upsert (add to value)
    for totals and histogram buckets alike.
    """

    endpoint = models.CharField(max_length=200)
    hour = models.DateTimeField()
    metric = models.CharField(max_length=32)
    value = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "hour", "metric"], name="endpoint_cost_unique"),
        ]

    def __str__(self):
        return f"{self.endpoint} {self.hour:%Y-%m-%d %H:00} {self.metric}={self.value}"


class QuotaAlert(models.Model):
    """One row per alert sent: the unique constraint is what makes it 'once'."""

    customer = models.ForeignKey("plans.Customer", on_delete=models.CASCADE, related_name="quota_alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField(help_text="Percent of the quota.")
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period_start", "threshold"], name="quota_alert_once_per_period"
            ),
        ]

    def __str__(self):
        return f"{self.threshold}% alert to customer {self.customer_id} for {self.period_start:%Y-%m-%d}"


class RefusalRecord(models.Model):
    """API requests refused to one customer in one hour (UTC), by status:
    429 (burst or quota) or 402 (billing). For the dashboards' refusal rates;
    refused requests are never billed."""

    customer = models.ForeignKey("plans.Customer", on_delete=models.CASCADE, related_name="refusals")
    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    status = models.PositiveSmallIntegerField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "hour", "status"], name="refusal_record_unique"),
        ]
        indexes = [models.Index(fields=["hour"])]

    def __str__(self):
        return f"{self.customer_id} {self.hour:%Y-%m-%d %H:00} {self.status}: {self.count}"
