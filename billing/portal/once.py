"""Money-moving portal forms run once: each rendered form carries a fresh key
(``form_key``), and a second submission of the same form — a double click, a resubmitted
page — finds the first one's record and changes nothing.

The same table and the same serialization as the API's ``Idempotency-Key``
(``orgbilling.api.idempotency``): a transaction-scoped advisory lock on (user, key), then the
``IdempotencyRecord``, written in the transaction of the service's writes, so money that moved
always has its record and two concurrent submissions queue on the lock. Refusals are not
recorded: the page shown after one carries a new key for the corrected form.
"""

import hashlib
import json
import secrets
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

from billing.models import IdempotencyRecord
from organizations.models import User

FIELD = "form_key"
PREFIX = "portal:"


def form_key() -> str:
    return secrets.token_urlsafe(18)


def _lock_id(user_id: int, key: str) -> int:
    # The API's lock id for the same (user, key): a portal key can never block an API key,
    # since portal keys are stored with their own prefix.
    digest = hashlib.sha256(f"idempotency:{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def run_once(*, user: User, key: str, path: str, values: dict[str, Any], run: Callable[[], Any]) -> bool:
    """Run ``run`` unless this form (``key``) already went through; ``False`` when it had.
    Without a key (an old page, a hand-made request) it simply runs."""
    if not key:
        run()
        return True
    stored_key = f"{PREFIX}{key[:200]}"
    fingerprint = hashlib.sha256(
        f"POST {path}\n{json.dumps(values, sort_keys=True, default=str)}".encode()
    ).hexdigest()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id(user.pk, stored_key)])
        if IdempotencyRecord.objects.filter(user=user, key=stored_key).exists():
            return False
        run()
        IdempotencyRecord.objects.create(
            user=user, key=stored_key, request_fingerprint=fingerprint, status_code=303, response_body={}
        )
    return True
