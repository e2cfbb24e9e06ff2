"""saas.wsgi plus one bare Redis round trip (PING) per request, for bench-http.

Served with enforcement off, it shows what any design that asks Redis once per
request costs on this machine before doing any work in Redis: the ceiling for
the enforced server. The PING goes the way the limiter's own check goes (the
same per-thread connection and packed command, metering.limiter.wire.send_line).
"""

# First: it sets Django up, which the limiter's modules need (they load models).
from saas.wsgi import application as django_application

# isort: split
from metering.limiter.redis_backend import django_redis_client as _django_redis_client
from metering.limiter.wire import send_line as _send_line

PING = b"*1\r\n$4\r\nPING\r\n"


def application(environ, start_response):
    if environ.get("HTTP_AUTHORIZATION"):  # API requests only, as the limiter
        _send_line(_django_redis_client(), PING, ("PING",))
    return django_application(environ, start_response)
