"""ASGI entry point (uvicorn / gunicorn with uvicorn workers).

The metered LLM endpoints (``/api/v1/llm/``) are served by the gateway's handler, with a
middleware chain that stays on the event loop (``billing/gateway/asgi.py``), the common chat
completion by the lean route in front of it (``billing/gateway/lean.py``); everything else by
Django's handler with the full ``MIDDLEWARE``.
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgbilling.settings.production")
# A web process: pooled connections, bounded statements and lock waits (settings/database.py).
os.environ.setdefault("ORGBILLING_PROCESS", "web")
django_application = get_asgi_application()  # sets Django up before the gateway is imported

from billing.gateway.asgi import GatewayASGIHandler  # noqa: E402
from billing.gateway.lean import LeanChatRoute  # noqa: E402

gateway_application = LeanChatRoute(fallback=GatewayASGIHandler())
GATEWAY_PREFIX = "/api/v1/llm/"


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"].startswith(GATEWAY_PREFIX):
        await gateway_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
