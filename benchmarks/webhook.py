"""Benchmark: how fast POST /billing/stripe/webhook/ answers Stripe.

    .venv/bin/python benchmarks/webhook.py        (or: make bench-webhook)

What the endpoint does in production: verify the Stripe-Signature (HMAC,
signed here exactly as Stripe signs), store the event once in PostgreSQL, and
publish the task that applies it to RabbitMQ. Applying is the worker's job, so
it is not timed: the task goes to a queue of its own that nothing consumes and
that is deleted at the end. In-process through Django's test client (no HTTP
server), so the figure is the endpoint's own time.

PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/saas_bench,
migrated here). Broker: BENCH_BROKER_URL (default amqp://guest:guest@127.0.0.1:5672//).
"""

import hashlib
import hmac
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DELIVERIES = 500
WARMUP = 50
SECRET = "whsec_bench"


def main():
    queue = f"webhook-bench-{uuid.uuid4().hex}"
    os.environ.update(
        DATABASE_URL=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/saas_bench"),
        CELERY_BROKER_URL=os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
        STRIPE_WEBHOOK_SECRET=SECRET,
        DJANGO_SETTINGS_MODULE="saas.settings",
        DEBUG="false",
        SECRET_KEY=uuid.uuid4().hex,
        API_KEY_PEPPER=uuid.uuid4().hex,
        # Deployed settings, but the test client speaks plain HTTP: no TLS to redirect to.
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="testserver",
    )
    os.environ.pop("REDIS_URL", None)  # not on this path
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from billing.models import StripeEvent
    from saas.celery import app

    call_command("migrate", verbosity=0)
    app.conf.task_default_queue = queue
    client = Client()
    run = uuid.uuid4().hex
    times = []
    try:
        for number in range(WARMUP + DELIVERIES):
            event = {
                "id": f"evt_bench_{run}_{number}",
                "object": "event",
                "type": "invoice.paid",
                "created": int(time.time()),
                "livemode": False,
                "data": {"object": {"id": "in_bench", "object": "invoice"}},
            }
            payload = json.dumps(event).encode()
            timestamp = int(time.time())
            signature = hmac.new(
                SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
            ).hexdigest()
            started = time.perf_counter()
            response = client.post(
                "/billing/stripe/webhook/",
                payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={signature}",
            )
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                sys.exit(f"delivery {number}: {response.status_code} {response.content[:200]!r}")
            if number >= WARMUP:
                times.append(elapsed)
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
        StripeEvent.objects.filter(stripe_id__startswith=f"evt_bench_{run}_").delete()
    times.sort()
    print(
        f"webhook endpoint, {DELIVERIES} signed deliveries (verify, store once, publish the task): "
        f"p50 {statistics.median(times):.1f} ms, p99 {times[int(len(times) * 0.99) - 1]:.1f} ms, "
        f"max {times[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
