from rest_framework import serializers


class DailyUsageSerializer(serializers.Serializer):
    date = serializers.DateField()
    used = serializers.IntegerField()


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
