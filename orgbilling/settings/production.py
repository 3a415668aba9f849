"""Production overrides. Every secret comes from the environment; nothing insecure defaults."""

from django.core.exceptions import ImproperlyConfigured

from orgbilling.settings.base import *  # noqa: F403
from orgbilling.settings.env import env

DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
# Secure cookies unless explicitly turned off for plain-http local stacks (docker compose).
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

# Static files (the admin's) are served by the app itself, compressed and cache-busted.
MIDDLEWARE = list(MIDDLEWARE)  # noqa: F405  (a copy: base's list is left as it is)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The connection budget (README, "Database connections") must fit what the server allows; a
# deployment whose processes could together open more connections than that does not start.
_budget_total = DB_CONNECTION_BUDGET["total"]  # noqa: F405
if _budget_total > DB_MAX_CONNECTIONS:  # noqa: F405
    raise ImproperlyConfigured(
        f"The database connection budget is {_budget_total} (WEB_CONCURRENCY x (DB_POOL_MAX_SIZE "
        "+ LLM_GATEWAY_DB_POOL_SIZE) "
        "+ CELERY_WORKERS x CELERY_WORKER_CONCURRENCY + DB_OPERATOR_RESERVE) but "
        f"DB_MAX_CONNECTIONS is {DB_MAX_CONNECTIONS}: lower the pools or raise max_connections."  # noqa: F405
    )
