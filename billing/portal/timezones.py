"""The portal shows dates in the person's time zone: the browser reports it in a cookie
(``static/portal/portal.js``); until it has, or when it names no known zone, UTC."""

import zoneinfo
from datetime import tzinfo
from functools import cache

from django.http import HttpRequest

COOKIE = "portal_tz"
_UTC = zoneinfo.ZoneInfo("UTC")


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def browser_timezone(request: HttpRequest) -> tzinfo:
    name = request.COOKIES.get(COOKIE, "")
    if name in _known_zones():
        return zoneinfo.ZoneInfo(name)
    return _UTC
