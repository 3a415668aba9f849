"""Local development: DEBUG on, loopback hosts, a throwaway secret unless one is given."""

from orgbilling.settings.env import env

env.ENVIRON.setdefault("DJANGO_SECRET_KEY", "dev-insecure-only-for-local-use")
env.ENVIRON.setdefault("DJANGO_DEBUG", "true")

from orgbilling.settings.base import *  # noqa: E402,F403

ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

# Under uvicorn (`make run`) static files come from WhiteNoise straight out of the apps.
MIDDLEWARE = [*MIDDLEWARE[:1], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
