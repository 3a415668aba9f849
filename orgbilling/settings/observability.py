"""Readiness, metrics and logs (orgbilling/observability). Star-imported at the end of base.py.

``LOG_FORMAT`` is ``json`` (one object per line) unless DEBUG is on (dev: readable console
lines). ``/metrics`` is refused with 404 while neither ``METRICS_TOKEN`` nor
``METRICS_ALLOWED_NETWORKS`` is set; when both are, a scrape must pass both. Prometheus'
multiprocess mode is chosen by the ``PROMETHEUS_MULTIPROC_DIR`` environment variable itself
(prometheus-client reads it when the first metric is created), not by a setting.
"""

import ipaddress

from orgbilling.settings.env import env

_DEBUG = env.bool("DJANGO_DEBUG", default=False)

LOG_LEVEL: str = env("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT: str = env("LOG_FORMAT", default="console" if _DEBUG else "json")
if LOG_FORMAT not in ("json", "console"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured('LOG_FORMAT must be "json" or "console".')

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {"()": "orgbilling.observability.logging.formatter", "log_format": LOG_FORMAT},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # django-axes logs every sign-in at INFO, outside any request; its failures and lockouts
    # (WARNING) are kept. The attempts themselves are in its tables (README, "Sessions ...").
    "loggers": {"axes": {"level": "WARNING"}},
}

# A scrape of /metrics sends `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time)
# and/or comes from one of these networks (CIDRs; the socket's peer address, REMOTE_ADDR: behind
# a proxy that is the proxy's address, so prefer the token there).
METRICS_TOKEN: str = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS: list[str] = [
    str(ipaddress.ip_network(network.strip(), strict=False))
    for network in env.list("METRICS_ALLOWED_NETWORKS", default=[])
    if network.strip()
]

# /readyz: the longest any one check may take (each also uses socket timeouts this short).
READINESS_TIMEOUT_SECONDS: float = env.float("READINESS_TIMEOUT_SECONDS", default=2.0)
