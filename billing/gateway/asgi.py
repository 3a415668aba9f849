"""The gateway's own ASGI handler: Django's, with a short middleware chain that runs on the
event loop.

Under ASGI, Django runs every ``MiddlewareMixin`` hook (``process_request``,
``process_response``, ``process_view``) through ``sync_to_async(thread_sensitive=True)``: about
a dozen hops per request, all onto one shared thread. For the metered LLM endpoints, which are
JSON and authenticate by themselves, that was a third of the gateway's CPU per call
(docs/benchmarks.md). ``orgbilling.asgi`` routes ``/api/v1/llm/`` here; everything else (the
admin, the REST API) keeps the full ``MIDDLEWARE``, which ``check --deploy`` inspects.

The chain (``LLM_GATEWAY_MIDDLEWARE``) keeps what the gateway needs: security headers and
HTTPS redirect, the session and ``request.user`` for browser callers (DRF's
``SessionAuthentication`` checks CSRF itself), and the rate-limit headers. Their hooks only
read and write the request and response, so they run on the loop; a session that was read
is saved on a thread, as Django would.
"""

from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase, HttpResponsePermanentRedirect
from django.middleware.security import SecurityMiddleware
from django.utils.module_loading import import_string


class _OnLoop:
    """For a ``MiddlewareMixin`` whose hooks touch only the request and response."""

    get_response: Any

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response  # type: ignore[no-any-return]


class GatewaySecurityMiddleware(_OnLoop, SecurityMiddleware):
    """``ALLOWED_HOSTS`` (CommonMiddleware's job on the rest of the site), the HTTPS redirect,
    HSTS, nosniff, referrer policy and cross-origin opener policy."""

    def process_request(self, request: HttpRequest) -> HttpResponsePermanentRedirect | None:
        request.get_host()  # DisallowedHost → 400 for a Host not in ALLOWED_HOSTS
        return super().process_request(request)


class GatewayAuthenticationMiddleware(_OnLoop, AuthenticationMiddleware):
    """Sets the lazy ``request.user``; it is resolved on the gateway's database threads."""


class GatewaySessionMiddleware(SessionMiddleware):
    """The session store loads lazily; only a session that was read (a browser caller) can
    need saving, and that is done on a thread."""

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)
        response = await self.get_response(request)  # type: ignore[misc]
        if request.session.accessed or settings.SESSION_SAVE_EVERY_REQUEST:
            return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
        return self.process_response(request, response)


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler with ``settings.LLM_GATEWAY_MIDDLEWARE`` instead of ``MIDDLEWARE``.
    Every entry must be async-capable and have no view, template-response or exception hooks."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"The gateway serves HTTP only, not {scope['type']}.")
        # Django wraps each request in a ThreadSensitiveContext, which starts (and joins) a
        # thread per request for its thread-sensitive calls. The gateway's few (the request
        # signals' sync receivers, saving a browser's session) share asgiref's one thread
        # instead; its database work has its own threads (billing.gateway.db).
        await self.handle(scope, receive, send)

    def load_middleware(self, is_async: bool = False) -> None:
        if not is_async:
            raise ImproperlyConfigured("GatewayASGIHandler serves ASGI only.")
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response_async)  # type: ignore[attr-defined]
        for path in reversed(settings.LLM_GATEWAY_MIDDLEWARE):
            middleware = import_string(path)
            hooks = [h for h in ("process_view", "process_template_response", "process_exception")
                     if hasattr(middleware, h)]  # fmt: skip
            if not getattr(middleware, "async_capable", False) or hooks:
                problem = f"has {', '.join(hooks)}" if hooks else "is not async-capable"
                raise ImproperlyConfigured(f"LLM_GATEWAY_MIDDLEWARE: {path} {problem}.")
            instance = middleware(handler)
            if not iscoroutinefunction(instance):
                raise ImproperlyConfigured(f"LLM_GATEWAY_MIDDLEWARE: {path} did not switch to async mode.")
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler
