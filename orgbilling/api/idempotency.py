"""``Idempotency-Key`` for money-moving POSTs.

The same key and body replays the first response (header ``Idempotent-Replayed: true``); the
same key with another body is 409 ``idempotency_key_reused``. Concurrent requests with one key
are serialized on a PostgreSQL advisory lock held for the request, so the second waits for the
first and then replays it: money moves once. 5xx responses are not stored (they may be retried).
"""

import functools
import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from rest_framework.response import Response

from billing.models import IdempotencyRecord
from orgbilling.api.exceptions import error_body

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _fingerprint(request: Any) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _lock_id(user_id: int, key: str) -> int:
    digest = hashlib.sha256(f"idempotency:{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def idempotent(view_method: Callable[..., Response]) -> Callable[..., Response]:
    """Decorate a DRF view method (``post``) so it honours ``Idempotency-Key``."""

    @functools.wraps(view_method)
    def wrapper(self: Any, request: Any, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None or not request.user.is_authenticated:
            return view_method(self, request, *args, **kwargs)
        if not key or len(key) > MAX_KEY_LENGTH:
            return Response(
                error_body("validation_error", f"{HEADER} must be 1-{MAX_KEY_LENGTH} characters."), status=400
            )
        fingerprint = _fingerprint(request)
        lock_id = _lock_id(request.user.pk, key)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [lock_id])
        try:
            previous = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
            if previous is not None:
                if previous.request_fingerprint != fingerprint:
                    return Response(
                        error_body(
                            "idempotency_key_reused",
                            "This Idempotency-Key was already used with a different request.",
                            {"key": key},
                        ),
                        status=409,
                    )
                return Response(
                    previous.response_body,
                    status=previous.status_code,
                    headers={"Idempotent-Replayed": "true"},
                )
            try:
                response = view_method(self, request, *args, **kwargs)
            except Exception as exc:
                # Refusals are outcomes too: store them so a retry cannot turn into a charge.
                response = self.handle_exception(exc)
            if response.status_code < 500:
                with transaction.atomic():
                    IdempotencyRecord.objects.create(
                        user=request.user,
                        key=key,
                        request_fingerprint=fingerprint,
                        status_code=response.status_code,
                        response_body=json.loads(json.dumps(response.data, default=_json_default)),
                    )
            return response
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])

    return wrapper


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)
