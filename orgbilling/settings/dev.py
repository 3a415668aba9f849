"""Local development: DEBUG on, loopback hosts, a throwaway secret unless one is given."""

from orgbilling.settings.env import env

env.ENVIRON.setdefault("DJANGO_SECRET_KEY", "dev-insecure-only-for-local-use")
env.ENVIRON.setdefault("DJANGO_DEBUG", "true")

from orgbilling.settings.base import *  # noqa: E402,F403

ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

# Under uvicorn (`make run`) static files come from WhiteNoise straight out of the apps.
MIDDLEWARE = list(MIDDLEWARE)  # noqa: F405  (a copy: base's list is left as it is)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# /metrics is open to scrapes from this machine (production: METRICS_TOKEN / _ALLOWED_NETWORKS).
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
