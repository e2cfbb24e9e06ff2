from rest_framework import serializers


class DailyUsageSerializer(serializers.Serializer):
    date = serializers.DateField()
    used = serializers.IntegerField()


class BillSerializer(serializers.Serializer):
    currency = serializers.CharField()
    flat = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="The tier's price.")
    overage_units = serializers.IntegerField(help_text="Requests over the quota so far (within the cap).")
    overage = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="Overage billed so far.")
    projected_overage_units = serializers.IntegerField(help_text="At this period's average rate.")
    projected_total = serializers.DecimalField(max_digits=12, decimal_places=2)


class UsageSerializer(serializers.Serializer):
    tier = serializers.CharField()
    quota = serializers.IntegerField()
    quota_period = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    used = serializers.IntegerField(help_text="Billable units this period, exact up to the last request.")
    remaining = serializers.IntegerField()
    burst = serializers.IntegerField(help_text="Requests per second.")
    daily = DailyUsageSerializer(many=True)
    bill = BillSerializer(help_text="The period's bill: flat price, overage so far, and the projected total.")
