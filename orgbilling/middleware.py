"""A base for middleware whose work around the view touches only the request and response."""

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase


class DualModeMiddleware:
    """Runs in the mode it is called in: sync under WSGI, on the event loop under ASGI (Django
    would otherwise hop a sync middleware onto a thread twice per request). Subclasses define
    ``__call__`` (returning ``self.__acall__(request)`` when ``self.async_mode``) and ``__acall__``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        raise NotImplementedError


class RequestResponseMiddleware(DualModeMiddleware):
    """Subclasses define ``before(request)``, whose result is handed to ``after(request,
    response, state)``, and may end a request early with ``refuse(request)``; all three run
    where the request runs (so they must not touch the database under ASGI)."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        refused = self.refuse(request)
        if refused is not None:
            return refused
        state = self.before(request)
        return self.after(request, self.get_response(request), state)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        refused = self.refuse(request)
        if refused is not None:
            return refused
        state = self.before(request)
        return self.after(request, await self.get_response(request), state)

    def refuse(self, request: HttpRequest) -> HttpResponseBase | None:
        """An answer that ends the request here, or None to go on."""
        return None

    def before(self, request: HttpRequest) -> Any:
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase, state: Any) -> HttpResponseBase:
        return response
