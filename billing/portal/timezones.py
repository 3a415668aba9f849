"""The portal shows dates in the person's time zone: the browser reports it in a cookie
(``static/portal/portal.js``); until it has, or when it names no known zone, UTC."""

import zoneinfo
from datetime import tzinfo
from functools import cache
from urllib.parse import unquote

from django.http import HttpRequest

COOKIE = "portal_tz"
_UTC = zoneinfo.ZoneInfo("UTC")


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def browser_timezone(request: HttpRequest) -> tzinfo:
    name = unquote(request.COOKIES.get(COOKIE, ""))  # the script URI-encodes it (Europe%2FParis)
    if name in _known_zones():
        return zoneinfo.ZoneInfo(name)
    return _UTC
