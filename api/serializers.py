from rest_framework import serializers

MAX_PRIMES_BOUND = 2_000_000


class EchoSerializer(serializers.Serializer):
    query = serializers.DictField(help_text="The query parameters received; repeated ones as lists.")


class PrimesQuerySerializer(serializers.Serializer):
    below = serializers.IntegerField(
        min_value=2, max_value=MAX_PRIMES_BOUND, default=100_000, help_text="Upper bound (exclusive)."
    )


class PrimesSerializer(serializers.Serializer):
    below = serializers.IntegerField()
    count = serializers.IntegerField()
    largest = serializers.IntegerField(allow_null=True)
    last = serializers.ListField(child=serializers.IntegerField(), help_text="Up to the ten largest primes.")


class TimezonesQuerySerializer(serializers.Serializer):
    # Not trimmed, and `(?!\n)`: Python's `$` also matches before a final
    # newline, the schema's (ECMA) `$` does not; both refuse "Europe/\n" now.
    region = serializers.RegexField(
        r"^[A-Za-z_/+-]{1,40}(?!\n)$",
        trim_whitespace=False,
        required=False,
        help_text="Only zones whose name starts with this, e.g. Europe/.",
    )


class TimezoneSerializer(serializers.Serializer):
    name = serializers.CharField()
    abbreviation = serializers.CharField()
    utc_offset = serializers.CharField()
    utc_offset_seconds = serializers.IntegerField()
    dst = serializers.BooleanField()
    local_time = serializers.DateTimeField()


class TimezoneListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    at = serializers.DateTimeField()
    timezones = TimezoneSerializer(many=True)
