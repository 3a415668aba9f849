"""Settings shared by every environment. Environment-specific modules override only."""

from orgbilling.settings.env import BASE_DIR, env

SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "mozilla_django_oidc",
    "axes",  # password sign-in throttle (orgbilling/settings/sessions.py)
    "organizations",
    "billing",
    "orgbilling.observability",
]

MIDDLEWARE = [
    # Outermost, so every response carries X-Request-Id and is timed (orgbilling/observability).
    "orgbilling.observability.request_id.RequestIdMiddleware",
    "orgbilling.observability.metrics.RequestMetricsMiddleware",
    "orgbilling.input_guard.InputGuardMiddleware",  # NUL/surrogates → 400, oversized → 413
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy: our own origin only (orgbilling/settings/portal.py).
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # SSO sessions re-checked against Keycloak; staff sessions capped (organizations/auth/sessions.py).
    "organizations.auth.sessions.SessionPolicyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "orgbilling.api.throttling.RateLimitHeadersMiddleware",
    # Last, as django-axes asks: turns a refused password sign-in into the 429 lockout answer.
    "axes.middleware.AxesMiddleware",
]

# Usage analytics, CSV exports and the usage summary refuse a longer span (bounded work).
USAGE_MAX_SPAN_DAYS: int = env.int("USAGE_MAX_SPAN_DAYS", default=400)

# An invitation to join an organization can be accepted for this many days (docs/decisions.md).
ORG_INVITATION_TTL_DAYS: int = env.int("ORG_INVITATION_TTL_DAYS", default=14)

# Request bodies (orgbilling/input_guard.py): the REST API's, and the gateway's (long prompts).
API_MAX_BODY_BYTES: int = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
LLM_MAX_BODY_BYTES: int = env.int("LLM_MAX_BODY_BYTES", default=8 * 1024 * 1024)
# Django's own cap stays above both, so the guard's 413 answers first.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, LLM_MAX_BODY_BYTES) + 1

ROOT_URLCONF = "orgbilling.urls"
WSGI_APPLICATION = "orgbilling.wsgi.application"
ASGI_APPLICATION = "orgbilling.asgi.application"

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
            # The portal's filters (credits, not millicredits), in every template.
            "libraries": {"portal": "billing.portal.templatetags"},
        },
    },
]

# PostgreSQL, its connection pool (web processes), budget and timeouts.
from orgbilling.settings.database import *  # noqa: E402,F403

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "organizations.User"
# Both always listed; each checks OIDC_ENABLED when called: passwords for staff only while
# Keycloak SSO is configured, the OIDC backend inert while it is not (organizations/auth/oidc.py).
# First, the throttle: it refuses a locked-out username or address before any backend runs.
AUTHENTICATION_BACKENDS = [
    "organizations.auth.throttling.PasswordThrottleBackend",
    "organizations.auth.oidc.LocalPasswordBackend",
    "organizations.auth.oidc.KeycloakOIDCBackend",
]
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
STATIC_ROOT = BASE_DIR / "staticfiles"


def _cache() -> dict[str, object]:
    """``CACHE_URL``; a Redis one gets short socket timeouts and a circuit breaker
    (``orgbilling/cache.py``), so a Redis that is down or hung costs milliseconds, not seconds.
    What each use of the cache does while it is down: README, "When Redis is down"."""
    cache: dict[str, object] = env.cache("CACHE_URL", default="locmemcache://orgbilling")
    if cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        cache["BACKEND"] = "orgbilling.cache.RedisCache"
        options = cache.setdefault("OPTIONS", {})
        assert isinstance(options, dict)
        options.setdefault("socket_connect_timeout", env.float("CACHE_CONNECT_TIMEOUT_SECONDS", default=0.25))
        options.setdefault("socket_timeout", env.float("CACHE_SOCKET_TIMEOUT_SECONDS", default=0.25))
        options.setdefault("retry_after_failure", env.float("CACHE_RETRY_AFTER_SECONDS", default=5.0))
    return cache


CACHES = {"default": _cache()}

REST_FRAMEWORK = {
    # API keys (obk_…) first, then Keycloak bearer tokens, then the browser session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "organizations.auth.api_key_auth.ApiKeyAuthentication",
        "organizations.auth.bearer.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Signed in, and (for API-key callers) within the key's scopes.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "organizations.auth.api_key_auth.ApiKeyScopePermission",
    ],
    "DEFAULT_PARSER_CLASSES": ["orgbilling.api.parsers.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "orgbilling.api.pagination.StandardPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": [
        "orgbilling.api.throttling.ReadThrottle",
        "orgbilling.api.throttling.WriteThrottle",
    ],
    "EXCEPTION_HANDLER": "orgbilling.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "COERCE_DECIMAL_TO_STRING": False,
}

# Requests per user (per client IP when anonymous); "N/second|minute|hour|day".
API_RATE_LIMITS = {
    "read": env("API_RATE_LIMIT_READ", default="100/minute"),
    "write": env("API_RATE_LIMIT_WRITE", default="20/minute"),
    "subscription": env("API_RATE_LIMIT_SUBSCRIPTION", default="5/hour"),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "orgbilling API",
    "DESCRIPTION": (
        "Organization billing: subscriptions, shared credit pools, per-member allocations, "
        "usage attribution. Credits are JSON numbers with at most 3 decimals (1 credit = $0.01). "
        'Every error has the shape {"error": {"code", "message", "details"}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orgbilling.api.schema.forbid_unknown_request_fields",
        "orgbilling.api.schema.document_input_guard",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SubscriptionStatusEnum": "billing.models.OrganizationSubscription.Status",
        "MemberStatusEnum": "organizations.models.OrganizationMember.Status",
        "MemberRoleEnum": "organizations.models.OrganizationMember.Role",
        # Organization and individual purchases share their states.
        "PurchaseStatusEnum": "billing.models.CreditPurchase.Status",
    },
}

# Which SubscriptionBackend keeps subscriptions: "local" (no external service) or a dotted path.
SUBSCRIPTION_BACKEND = env("SUBSCRIPTION_BACKEND", default="local")

# The session cookie's name (the original system used `session_token`).
SESSION_COOKIE_NAME = env("SESSION_COOKIE_NAME", default="sessionid")

# Celery: a Redis broker when configured; otherwise tasks run eagerly in-process (dev).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL or None)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = env("CELERY_BEAT_SCHEDULE_FILENAME", default="celerybeat-schedule")

# Identity: OIDC (Keycloak) settings live in their own module; so do the gateway's.
from orgbilling.settings.gateway import *  # noqa: E402,F403
from orgbilling.settings.oidc import *  # noqa: E402,F403
from orgbilling.settings.sessions import *  # noqa: E402,F403

# Ledger policy knobs (see docs/decisions.md).
# A reservation not settled or released within this many seconds may be expired by a task.
CREDIT_RESERVATION_TTL_SECONDS = env.int("CREDIT_RESERVATION_TTL_SECONDS", default=900)
# Run the deduction hot path as server-side prepared statements (billing/ledger/deduction.py).
# Turn off behind a transaction-mode pooler without prepared-statement support.
LEDGER_PREPARED_STATEMENTS = env.bool("LEDGER_PREPARED_STATEMENTS", default=True)

# Local development only: the password `ensure_dev_admin` sets (a random one is kept in .pg/ otherwise).
DEV_ADMIN_PASSWORD = env("DEV_ADMIN_PASSWORD", default="")

# Readiness, metrics and structured logs (LOGGING, LOG_FORMAT, METRICS_*); Lago and Stripe
# (subscriptions, credit purchases, webhooks); Celery task behaviour, the beat schedule and
# alert e-mail.
from orgbilling.settings.observability import *  # noqa: E402,F403
from orgbilling.settings.payments import *  # noqa: E402,F403
from orgbilling.settings.portal import *  # noqa: E402,F403
from orgbilling.settings.tasks import *  # noqa: E402,F403
