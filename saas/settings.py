"""Settings, read from the environment.

With DEBUG unset this is a deployment: it needs SECRET_KEY and API_KEY_PEPPER
and refuses to start without them, and it answers over HTTPS only (see
README's "Deploy"). DEBUG=true (which `make run` sets) is the embedded
default: a fixed development key, a SQLite file, in-process cache and limiter,
Celery tasks run eagerly, plain HTTP. A deployment also sets DATABASE_URL,
REDIS_URL, CELERY_BROKER_URL and STRIPE_*.
"""

from pathlib import Path
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _secret(name: str) -> str:
    """A secret from the environment, "" when unset; README's `<...>` placeholders are refused."""
    value = env.str(name, default="")
    if value.startswith("<") and value.endswith(">"):
        raise ImproperlyConfigured(f"{name} still holds a placeholder ({value}): set it to a random string.")
    return value


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ImproperlyConfigured(f"{name} must be a whole number from 1 up, not {value!r}.")
    return number


def _old_peppers(raw: dict[str, str], current_version: int) -> dict[int, str]:
    """API_KEY_OLD_PEPPERS, "1=first,2=second": the older peppers still accepted, by version."""
    peppers = {}
    for version, pepper in raw.items():
        number = _positive_int("API_KEY_OLD_PEPPERS (a version)", version)
        if not pepper:
            raise ImproperlyConfigured(f"API_KEY_OLD_PEPPERS gives version {number} an empty pepper.")
        if number == current_version:
            raise ImproperlyConfigured(
                f"API_KEY_OLD_PEPPERS repeats version {number}, the current API_KEY_PEPPER_VERSION."
            )
        peppers[number] = pepper
    return peppers


def _proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """ "X-Forwarded-Proto" or "X-Forwarded-Ssl=on" as Django's (META key, value); "" is none."""
    if not value:
        return None
    header, _, expected = value.partition("=")
    return "HTTP_" + header.strip().upper().replace("-", "_"), expected.strip() or "https"


# Off unless asked for: a deployment that forgets it must not serve debug pages
# nor sign with the development key below.
DEBUG = env.bool("DEBUG", default=False)

# A fixed key is only tolerable on a developer's machine; production must set
# its own, and starting without one would silently sign sessions with a
# publicly known key.
_DEV_SECRET_KEY = "django-insecure-dev-only-key-do-not-use-in-production"
SECRET_KEY = _secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. In production export SECRET_KEY to a long random "
            'string (python -c "import secrets; print(secrets.token_urlsafe(50))"); on a developer\'s '
            "machine set DEBUG=true for the embedded default (make run does)."
        )
    SECRET_KEY = _DEV_SECRET_KEY

# API keys are stored as "v<version>$" + HMAC-SHA256(pepper, key). The pepper
# is its own secret, so that rotating SECRET_KEY (sessions, password reset
# links) leaves every API key working. A new pepper is added, never swapped:
# it becomes API_KEY_PEPPER under the next version and the old one moves to
# API_KEY_OLD_PEPPERS, where keys hashed with it keep working (and move to the
# new pepper at their next lookup) until it is removed (README, "API keys").
API_KEY_PEPPER = _secret("API_KEY_PEPPER")
if not API_KEY_PEPPER:
    if not DEBUG:
        raise ImproperlyConfigured(
            "API_KEY_PEPPER is not set and DEBUG is off. Export it to a long random string of its own. "
            "Upgrading a deployment whose keys were hashed with SECRET_KEY: set API_KEY_PEPPER to the "
            "value of SECRET_KEY, or every existing API key stops working."
        )
    API_KEY_PEPPER = SECRET_KEY
API_KEY_PEPPER_VERSION = _positive_int(
    "API_KEY_PEPPER_VERSION", env.str("API_KEY_PEPPER_VERSION", default="1")
)
API_KEY_OLD_PEPPERS = _old_peppers(env.dict("API_KEY_OLD_PEPPERS", default={}), API_KEY_PEPPER_VERSION)
API_KEY_PREFIX = env.str("API_KEY_PREFIX", default="tk_live_")
# Active (not revoked, not expired) keys a customer may hold at once.
API_KEYS_PER_CUSTOMER = _positive_int("API_KEYS_PER_CUSTOMER", env.str("API_KEYS_PER_CUSTOMER", default="20"))

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Proxies in front of the app (load balancer, nginx): client addresses are read
# from X-Forwarded-For through them, and whether the client used HTTPS from
# X-Forwarded-Proto.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# HTTPS. With DEBUG off the defaults are a deployment's, and pass `manage.py
# check --deploy`: plain HTTP is redirected, browsers are told to use HTTPS only
# for a year, on every subdomain (and may preload that), and cookies travel
# over HTTPS only. Each can be set from the environment.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers and orchestrators probe the health check over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
# Behind a proxy that ends TLS every request reaches the app over HTTP; the
# proxy's header says what the client used. Trusted only when proxies are
# declared, since a client could send the header itself; the proxy must set
# it, replacing any the client sent.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(
    env.str("SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto" if TRUSTED_PROXY_COUNT else "")
)

INSTALLED_APPS = [
    # django.contrib.admin with the operator dashboard (saas/admin_site.py)
    "saas.apps.OperatorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "saas",
    "plans",
    "billing",
    "apikeys",
    "metering",
    "api",
    "allauth",
    "allauth.account",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A view or page that cannot reach the database answers 503, not 500.
    "saas.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Django's bodiless 405 becomes a page (or JSON for the API); after the
    # session, user and messages, which the page's layout reads.
    "saas.middleware.MethodNotAllowedPageMiddleware",
    "metering.middleware.MeteringMiddleware",
]

ROOT_URLCONF = "saas.urls"
WSGI_APPLICATION = "saas.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# PostgreSQL timeouts. A web request must fail fast when the database stalls;
# Celery tasks and management commands (migrations, reconciles) may run long.
# DATABASE_TIMEOUTS=task picks their pair: manage.py sets it for every command
# but runserver, Celery workers are started with it.
DATABASE_TIMEOUTS = env.str("DATABASE_TIMEOUTS", default="web")
if DATABASE_TIMEOUTS not in ("web", "task"):
    raise ImproperlyConfigured(f"DATABASE_TIMEOUTS must be web or task, not {DATABASE_TIMEOUTS!r}.")
_TASK = DATABASE_TIMEOUTS == "task"
_TIMEOUTS_PREFIX = "DATABASE_TASK_" if _TASK else "DATABASE_"
# Whole seconds, 2 at least (libpq's rule).
DATABASE_CONNECT_TIMEOUT_SECONDS = env.int(
    f"{_TIMEOUTS_PREFIX}CONNECT_TIMEOUT_SECONDS", default=10 if _TASK else 2
)
DATABASE_STATEMENT_TIMEOUT_SECONDS = env.float(
    f"{_TIMEOUTS_PREFIX}STATEMENT_TIMEOUT_SECONDS", default=300.0 if _TASK else 3.0
)
DATABASE_UNAVAILABLE_RETRY_AFTER = env.int("DATABASE_UNAVAILABLE_RETRY_AFTER", default=5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, bounding what the server itself cannot time out (saas/postgresql/).
    DATABASES["default"]["ENGINE"] = "saas.postgresql"
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        connect_timeout=DATABASE_CONNECT_TIMEOUT_SECONDS,
        statement_timeout=DATABASE_STATEMENT_TIMEOUT_SECONDS,
        unreachable_backoff=env.float("DATABASE_UNREACHABLE_BACKOFF_SECONDS", default=1.0),
    )
# Behind a pooler in transaction mode (pgbouncer pool_mode=transaction) a
# server connection is shared between clients from one transaction to the
# next: nothing may outlive a transaction. So no server-side cursors, no
# prepared statements (psycopg prepares a query after 5 runs), and no
# statement_timeout in the startup packet (pgbouncer refuses `options`; set
# it on the role instead: README, "More than one machine").
DATABASE_TRANSACTION_POOLING = env.bool("DATABASE_TRANSACTION_POOLING", default=False)
if DATABASE_TRANSACTION_POOLING and DATABASES["default"]["ENGINE"] == "saas.postgresql":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["OPTIONS"].update(prepare_threshold=None, server_statement_timeout=False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# No REDIS_URL means the embedded in-process backends.
REDIS_URL = env.str("REDIS_URL", default="")
# A hung Redis costs a request at most this (then the breaker fails fast:
# core.breaker), so that every API request answers within 250 ms.
REDIS_TIMEOUT_SECONDS = env.float("REDIS_TIMEOUT_SECONDS", default=0.2)
# After a failed call, each process fails Redis calls at once for this long,
# then lets one request probe: serving resumes this soon after Redis answers.
REDIS_DOWN_BACKOFF_SECONDS = env.float("REDIS_DOWN_BACKOFF_SECONDS", default=1.0)
# Replicas that must hold a billed request's unit before it is served (WAIT:
# metering.limiter.replication). 0 on one Redis; 1 behind Sentinel or on a
# cluster so that a failover loses no billed request.
REDIS_REPLICA_ACKS = env.int("REDIS_REPLICA_ACKS", default=0)
# REDIS_URL names one node of a Redis Cluster (the client discovers the rest).
REDIS_CLUSTER = env.bool("REDIS_CLUSTER", default=False)
if REDIS_CLUSTER and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_CLUSTER=true needs REDIS_URL naming one of the cluster's nodes.")
if REDIS_CLUSTER and urlparse(REDIS_URL).path.strip("/") not in ("", "0"):
    raise ImproperlyConfigured("A Redis Cluster has only database 0: end REDIS_URL with /0 or nothing.")
# Redis Sentinel, the other high-availability layout: host:port of each
# Sentinel, comma-separated; REDIS_URL then names the master by the name the
# Sentinels monitor it under (redis://mymaster/0), and every connection asks
# them where the master is now.
REDIS_SENTINELS = []
for sentinel in env.list("REDIS_SENTINELS", default=[]):
    host, _, port = sentinel.rpartition(":")
    if not host or not port.isdigit():
        raise ImproperlyConfigured(f"REDIS_SENTINELS: {sentinel!r} is not host:port.")
    REDIS_SENTINELS.append((host, int(port)))
if REDIS_SENTINELS and (REDIS_CLUSTER or not REDIS_URL):
    raise ImproperlyConfigured(
        "REDIS_SENTINELS needs REDIS_URL naming the master by its Sentinel name (redis://mymaster/0), "
        "and no REDIS_CLUSTER: they are two different layouts."
    )
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "saas",
            "OPTIONS": {
                # Short timeouts: a hung Redis must turn into a fast 503, not a
                # request that holds a worker for the OS default.
                "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT_SECONDS,
                "SOCKET_TIMEOUT": REDIS_TIMEOUT_SECONDS,
            },
        }
    }
    if REDIS_CLUSTER:
        # django-redis has no cluster client: core.redis_cluster gives it RedisCluster.
        CACHES["default"]["OPTIONS"]["CONNECTION_FACTORY"] = "core.redis_cluster.ClusterConnectionFactory"
    if REDIS_SENTINELS:
        # Every command on the master, reads too (django-redis's SentinelClient
        # would read from replicas): a version read must not lag its write.
        CACHES["default"]["OPTIONS"].update(
            CONNECTION_FACTORY="django_redis.pool.SentinelConnectionFactory",
            SENTINELS=REDIS_SENTINELS,
            SENTINEL_KWARGS={
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            },
        )
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Only a deployment that runs collectstatic needs STATIC_ROOT (e.g. "staticfiles").
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve assets straight from the apps' static folders, so `make run` and a
# bare gunicorn work without a collectstatic step.
WHITENOISE_USE_FINDERS = True

# The product's name, at the head of every email subject ("[Tiered API] ..."),
# and the public address of the site, for links in emails sent outside a
# request (a Celery task has no host to build them from).
PRODUCT_NAME = env.str("PRODUCT_NAME", default="Tiered API")
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="noreply@localhost")

# Accounts (django-allauth): sign-up and login by email and password. The
# email must be verified before the first login: that is what lets sign-up
# answer a registered address exactly as a new one (and email its owner
# instead), so nobody learns who has an account. The key views check it too.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_PREVENT_ENUMERATION = True  # sign-up, login and password reset (accounts.W003 watches it)
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{PRODUCT_NAME}] "
# Changing the email (the account page): the new address replaces the old
# one, as the primary and the login, only once it is confirmed; one change
# pending at a time. The old address is told of the change, and of a new password.
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_EMAIL_NOTIFICATIONS = True
# Attempts per client IP, counted in the default cache (Redis when REDIS_URL
# is set; per process otherwise). Failed logins are also limited per account,
# and the lockout says in how many minutes to try again (accounts.lockout).
# The admin login counts in the same "login" and "login_failed" limits.
ACCOUNT_RATE_LIMITS = {
    "signup": env.str("SIGNUP_RATE_LIMIT", default="10/h/ip"),
    "login": env.str("LOGIN_RATE_LIMIT", default="30/m/ip"),
    "login_failed": "10/m/ip,5/5m/key",
}
# Behind a proxy every request comes from the proxy: count the proxies you
# run so allauth (and the API's limit on bad keys) read the client's address
# from X-Forwarded-For.
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard:index"

# Celery: with no broker configured, tasks run in the calling process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "flush-usage": {
        "task": "metering.tasks.flush_usage_task",
        "schedule": env.float("USAGE_FLUSH_SECONDS", default=60.0),
    },
    "report-overage": {
        "task": "billing.tasks.report_overage_task",
        "schedule": env.float("OVERAGE_REPORT_SECONDS", default=3600.0),
    },
    "reconcile-subscriptions": {
        "task": "billing.tasks.reconcile_subscriptions_task",
        "schedule": env.float("STRIPE_RECONCILE_SECONDS", default=6 * 3600.0),
    },
    "reconcile-usage": {
        "task": "billing.tasks.reconcile_usage_task",
        "schedule": env.float("USAGE_RECONCILE_SECONDS", default=24 * 3600.0),
    },
}

# The usage flush moves this many customers per PostgreSQL transaction (each
# holds one advisory lock per customer: keep it well under
# max_locks_per_transaction x max_connections, 6,400 by default).
USAGE_FLUSH_BATCH_SIZE = env.int("USAGE_FLUSH_BATCH_SIZE", default=500)
# The running flush holds a lock in Redis, renewed after each batch; a flush
# killed midway frees it after this long.
USAGE_FLUSH_LOCK_SECONDS = env.int("USAGE_FLUSH_LOCK_SECONDS", default=300)
# Expired batch ids (metering.flush) are deleted this many rows a statement.
USAGE_FLUSH_RETENTION_DELETE_ROWS = 10_000

# Cost baselines: unit prices (USD) and the share of requests measured.
COST_PER_CPU_MS = env.float("COST_PER_CPU_MS", default=0.000002)
COST_PER_KB_OUT = env.float("COST_PER_KB_OUT", default=0.000001)
COST_PER_THIRD_PARTY_CALL = env.float("COST_PER_THIRD_PARTY_CALL", default=0.005)
COST_SAMPLE_RATE = env.float("COST_SAMPLE_RATE", default=1.0)
# Each process sums its samples and writes them to Redis this often.
COST_FLUSH_SECONDS = env.float("COST_FLUSH_SECONDS", default=5.0)

# Stripe. The API version is pinned so that payload shapes do not change
# under us when Stripe releases a new version.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_API_VERSION = "2026-10-28.endive"
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10.0)
# The Billing Meter that overage usage is reported to (created by sync_tiers).
STRIPE_METER_EVENT_NAME = env.str("STRIPE_METER_EVENT_NAME", default="api_overage_requests")
# Task retries against Stripe: exponential backoff with jitter, bounded.
STRIPE_TASK_MAX_RETRIES = env.int("STRIPE_TASK_MAX_RETRIES", default=6)
STRIPE_TASK_BACKOFF_MAX_SECONDS = env.int("STRIPE_TASK_BACKOFF_MAX_SECONDS", default=600)

# Enforcement. Fail closed by default: with Redis unreachable the API answers
# 503 rather than serving unmetered traffic; fail-open admits it instead.
RATE_LIMIT_FAIL_OPEN = env.bool("RATE_LIMIT_FAIL_OPEN", default=False)
RATE_LIMIT_UNAVAILABLE_RETRY_AFTER = env.int("RATE_LIMIT_UNAVAILABLE_RETRY_AFTER", default=5)
# Idempotency-Key (metering/idempotency.py): how long a request that answered
# 2xx is remembered, how long a running one holds its key (longer than any
# request may run, short enough that a killed worker does not lock the key
# for long), and the largest response body kept for repeats (a day of keys
# per customer then stays a few MB of Redis at most).
IDEMPOTENCY_KEY_TTL_SECONDS = env.int("IDEMPOTENCY_KEY_TTL_SECONDS", default=24 * 3600)
IDEMPOTENCY_CLAIM_SECONDS = env.int("IDEMPOTENCY_CLAIM_SECONDS", default=60)
IDEMPOTENCY_MAX_STORED_BYTES = env.int("IDEMPOTENCY_MAX_STORED_BYTES", default=64 * 1024)
for _name in ("IDEMPOTENCY_KEY_TTL_SECONDS", "IDEMPOTENCY_CLAIM_SECONDS", "IDEMPOTENCY_MAX_STORED_BYTES"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")
# How long a process trusts its cached key contexts before asking Redis whether
# anything changed: revocations and tier changes reach every process this fast.
KEY_CONTEXT_TTL_SECONDS = env.float("KEY_CONTEXT_TTL_SECONDS", default=1.0)
# Unknown and revoked keys are remembered this long, in Redis and in each
# process, so a repeated bad key costs no SQL; a key's creation forgets its
# hash. Longer spares more lookups; shorter bounds what a flood of fresh keys
# leaves in Redis (about 200 bytes a key).
REJECTED_KEY_CACHE_SECONDS = env.int("REJECTED_KEY_CACHE_SECONDS", default=60)
# Failed authentications (malformed, unknown, revoked, expired keys) per client
# address per window; past the limit the API answers 429 until the window ends.
FAILED_AUTH_LIMIT = env.int("FAILED_AUTH_LIMIT", default=60)
FAILED_AUTH_WINDOW_SECONDS = env.int("FAILED_AUTH_WINDOW_SECONDS", default=60)
for _name in ("REJECTED_KEY_CACHE_SECONDS", "FAILED_AUTH_LIMIT", "FAILED_AUTH_WINDOW_SECONDS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")
BILLING_GRACE_PERIOD_DAYS = env.int("BILLING_GRACE_PERIOD_DAYS", default=7)
# Where a 402 sends the customer to settle their bill.
BILLING_PAGE_PATH = env.str("BILLING_PAGE_PATH", default="/dashboard/")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apikeys.authentication.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [
        "apikeys.permissions.HasAPIKeyScope",
        "billing.permissions.BillingInGoodStanding",
    ],
    # Every API view is limited and metered unless it opts out.
    "DEFAULT_THROTTLE_CLASSES": ["metering.throttling.TierThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # Every error response of every operation (api/schema.py), over metering's Idempotency-Key.
    "DEFAULT_SCHEMA_CLASS": "api.schema.DocumentedAutoSchema",
    "EXCEPTION_HANDLER": "core.errors.json_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tiered API",
    "DESCRIPTION": "The sample product API, sold in pricing tiers. "
    "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
    "VERSION": "1.0.0",
    "TAGS": [
        {"name": "Sample API", "description": "The endpoints the tiers sell: each call is metered."},
        {"name": "Account", "description": "Your own usage and limits: never counted against the quota."},
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are public; a stray API key header must not 401 them.
    "SERVE_AUTHENTICATION": [],
    # Local copies of Swagger UI and Redoc: no CDN, the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would send the schema to an online validator for its badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# Every record reaches the one console handler on the root logger. Django's
# own default config gives the "django" logger a console handler of its own
# (with DEBUG on) that also propagates to the root, which printed each of its
# lines twice under `make run`; it is replaced here by the admins' email alone.
# runserver's access lines ("django.server") keep Django's handler and format
# and do not propagate. LOG_LEVEL governs both.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "filters": ["require_debug_false"],
            "level": "ERROR",
        },
    },
    "loggers": {"django": {"handlers": ["mail_admins"], "level": LOG_LEVEL}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
