"""Settings, read from the environment.

With no environment at all this is the embedded default: DEBUG on, a SQLite
file, in-process cache and limiter, Celery tasks run eagerly. A deployment sets
DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, STRIPE_*, SECRET_KEY and DEBUG=false.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)

# A fixed key is only tolerable on a developer's machine; production must set
# its own, and starting without one would silently sign sessions with a
# publicly known key.
_DEV_SECRET_KEY = "django-insecure-dev-only-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG off the app refuses to start without "
            "its own secret: export SECRET_KEY to a long random string "
            '(python -c "import secrets; print(secrets.token_urlsafe(50))").'
        )
    SECRET_KEY = _DEV_SECRET_KEY

# API keys are stored as HMAC-SHA256(pepper, key). Changing the pepper
# invalidates every stored key, so it is its own setting and can outlive a
# SECRET_KEY rotation.
API_KEY_PEPPER = env.str("API_KEY_PEPPER", default=SECRET_KEY)
API_KEY_PREFIX = env.str("API_KEY_PREFIX", default="tk_live_")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

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
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# No REDIS_URL means the embedded in-process backends.
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_TIMEOUT_SECONDS = env.float("REDIS_TIMEOUT_SECONDS", default=0.5)
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

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="noreply@localhost")

# Accounts (django-allauth): sign-up and login by email and password. The
# email must be verified before the first API key (accounts.views enforces
# it); login does not wait for it, so a new user lands on the dashboard.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Tiered API] "
# Attempts per client IP, counted in the default cache (Redis when REDIS_URL
# is set; per process otherwise). Failed logins are also limited per account.
ACCOUNT_RATE_LIMITS = {
    "signup": env.str("SIGNUP_RATE_LIMIT", default="10/h/ip"),
    "login": env.str("LOGIN_RATE_LIMIT", default="30/m/ip"),
    "login_failed": "10/m/ip,5/5m/key",
}
# Behind a proxy every request comes from the proxy: count the proxies you
# run so allauth (and the API's failed-key limit) read the client's address
# from X-Forwarded-For.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
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
if FAILED_AUTH_LIMIT < 1 or FAILED_AUTH_WINDOW_SECONDS < 1 or REJECTED_KEY_CACHE_SECONDS < 1:
    raise ImproperlyConfigured(
        "FAILED_AUTH_LIMIT, FAILED_AUTH_WINDOW_SECONDS and REJECTED_KEY_CACHE_SECONDS must be at least 1."
    )
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
    "DEFAULT_SCHEMA_CLASS": "metering.schema.MeteredAutoSchema",
    "EXCEPTION_HANDLER": "core.errors.json_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tiered API",
    "DESCRIPTION": "The sample product API, sold in pricing tiers. "
    "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are public; a stray API key header must not 401 them.
    "SERVE_AUTHENTICATION": [],
    # Local copies of Swagger UI and Redoc: no CDN, the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
