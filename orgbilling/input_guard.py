"""Input the database or the JSON tools cannot hold is refused at the door, in the error shape.

PostgreSQL text and ``jsonb`` cannot store NUL (U+0000) and UTF-8 cannot encode an unpaired
surrogate; either, in any field, header or query parameter, used to reach the driver and come
back as a 500. And a body is bounded before anything parses it. So, for every request (the
site's chain and the gateway's):

- NUL or an unpaired surrogate in the query string, a header or a JSON body (raw, or escaped as
  ``\\u0000`` / ``\\ud800``) → 400 ``validation_error``, naming the query parameter or header
  (a body's field is not searched for: ``non_field_errors``);
- a body longer than ``API_MAX_BODY_BYTES`` (the gateway: ``LLM_MAX_BODY_BYTES``, prompts are
  long) → 413 ``request_too_large``.

Deeply nested JSON is refused by the parsers themselves (400 ``malformed_request``).
"""

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from orgbilling.api.exceptions import error_body
from orgbilling.middleware import RequestResponseMiddleware

# An escape that is not itself escaped (an even number of backslashes before it): \u0000, a
# high surrogate not followed by a low one, a low surrogate not preceded by a high one.
_ESCAPES = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u(?:0000"
    rb"|[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<![dD][89abAB][0-9a-fA-F]{2}\\u)[dD][c-fC-F][0-9a-fA-F]{2})"
)
# Raw NUL, and surrogates encoded as UTF-8 (ED A0..BF xx), which no UTF-8 decoder accepts.
_RAW = re.compile(rb"\x00|\xed[\xa0-\xbf]")
GATEWAY_PREFIX = "/api/v1/llm/"
BAD_TEXT = "Text may not contain NUL characters or unpaired surrogates."


def _bad_text(raw: bytes) -> bool:
    return bool(_RAW.search(raw) or _ESCAPES.search(raw))


def _limit(request: HttpRequest) -> int:
    if request.path.startswith(GATEWAY_PREFIX):
        return int(settings.LLM_MAX_BODY_BYTES)
    return int(settings.API_MAX_BODY_BYTES)


def refusal(request: HttpRequest) -> JsonResponse | None:
    """The answer to a request we will not process, or None."""
    limit = _limit(request)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return _too_large(limit)
    if _bad_text(unquote_to_bytes(request.META.get("QUERY_STRING", ""))):
        names = [k for k, values in request.GET.lists() if "\x00" in k or any("\x00" in v for v in values)]
        return _invalid({name.replace("\x00", ""): [BAD_TEXT] for name in names or ["query"]})
    headers = [key for key, value in request.META.items() if key.startswith("HTTP_") and "\x00" in str(value)]
    if headers:
        return _invalid({key.removeprefix("HTTP_").replace("_", "-").title(): [BAD_TEXT] for key in headers})
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        body = request.body
        if len(body) > limit:
            return _too_large(limit)
        form = request.content_type == "application/x-www-form-urlencoded"
        if _bad_text(unquote_to_bytes(body.replace(b"+", b" ")) if form else body):
            return _invalid({"non_field_errors": [BAD_TEXT]})
    return None


def _invalid(fields: dict[str, list[str]]) -> JsonResponse:
    body = error_body("validation_error", BAD_TEXT, {"fields": fields})
    return JsonResponse(body, status=400)


def _too_large(limit: int) -> JsonResponse:
    return JsonResponse(
        error_body("request_too_large", f"The body is larger than {limit} bytes.", {"limit_bytes": limit}),
        status=413,
    )


class InputGuardMiddleware(RequestResponseMiddleware):
    """``refusal`` before anything else reads the request (after the request id, so the answer
    carries one). Runs on the loop under ASGI: the body is already in memory or spooled."""

    def refuse(self, request: HttpRequest) -> Any:
        return refusal(request)
