"""``Idempotency-Key`` for money-moving POSTs.

The same key and body replays the first response (header ``Idempotent-Replayed: true``); the
same key with another body is 409 ``idempotency_key_reused``. Concurrent requests with one key
are serialized on a PostgreSQL advisory lock held for the request, so the second waits for the
first and then replays it: money moves once. 5xx responses are not stored (they may be retried).
The view's writes and the stored response commit together (see ``idempotent``).
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


def idempotent(view_method: Callable[..., Response] | None = None, *, atomic: bool = True) -> Any:
    """Decorate a DRF view method (``post``) so it honours ``Idempotency-Key``.

    ``atomic`` (the default): the view's writes and the stored response commit in one
    transaction, under a transaction-scoped advisory lock. Money that moved always has its
    response stored with it, so a failure at any point — the database gone between the
    service's commit and the record, the process killed — leaves either both or neither, and a
    retry with the key replays or runs once. ``atomic=False`` is for views that call an
    external service in the middle of their work (subscriptions → Lago): their services commit
    their own steps before the call and dedupe on their own keys; the record follows in a
    transaction of its own, under a session advisory lock."""
    if view_method is None:
        return functools.partial(idempotent, atomic=atomic)
    run = _run_atomic if atomic else _run_in_steps

    @functools.wraps(view_method)
    def wrapper(self: Any, request: Any, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None or not request.user.is_authenticated:
            return view_method(self, request, *args, **kwargs)
        if not key or len(key) > MAX_KEY_LENGTH:
            return Response(
                error_body("validation_error", f"{HEADER} must be 1-{MAX_KEY_LENGTH} characters."), status=400
            )
        return run(lambda: view_method(self, request, *args, **kwargs), self, request, key)

    return wrapper


def _run_atomic(call: Callable[[], Response], view: Any, request: Any, key: str) -> Response:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id(request.user.pk, key)])
        return _replay_or_run(call, view, request, key)


def _run_in_steps(call: Callable[[], Response], view: Any, request: Any, key: str) -> Response:
    lock_id = _lock_id(request.user.pk, key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [lock_id])
    try:
        return _replay_or_run(call, view, request, key)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])


def _replay_or_run(call: Callable[[], Response], view: Any, request: Any, key: str) -> Response:
    fingerprint = _fingerprint(request)
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
            previous.response_body, status=previous.status_code, headers={"Idempotent-Replayed": "true"}
        )
    try:
        response = call()
    except Exception as exc:
        # Refusals are outcomes too: store them so a retry cannot turn into a charge.
        response = view.handle_exception(exc)
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


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)
