"""API keys: minting (shown once), revoking, and recognising a presented key (the DRF
authentication that calls it is ``organizations.auth.api_key_auth``; listing keys is
``organizations.selectors``).

A key is ``obk_`` followed by 32 bytes from ``secrets`` (43 URL-safe characters). Only its
SHA-256 is stored. A slow password hash (bcrypt, argon2) is unnecessary here: those exist to
make guessing *low-entropy* secrets expensive, and a 256-bit random key cannot be guessed
however fast the hash; a plain digest also lets the key be found by an indexed equality
lookup, so no per-key salt or comparison loop is needed, and nothing about a stored key leaks
through timing (the attacker does not choose the digest being looked up).
"""

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from organizations.errors import ApiKeyNotFound
from organizations.models import ApiKey, User
from organizations.permissions import org_access
from orgbilling.audit import record_audit_event
from orgbilling.db import Columns, fetch_instances
from orgbilling.errors import ValidationFailed

KEY_PREFIX = "obk_"
KEY_PATTERN = re.compile(r"^obk_[A-Za-z0-9_-]{43}$")
DISPLAY_PREFIX_LENGTH = 12  # "obk_" and 8 characters: enough to tell keys apart, far from enough to use
DEFAULT_SCOPES = (ApiKey.Scope.READ.value, ApiKey.Scope.WRITE.value)
ALL_SCOPES = tuple(scope.value for scope in ApiKey.Scope)
# last_used_at is a hint for people, not an audit trail: one write a minute per key at most.
LAST_USED_PRECISION = timedelta(minutes=1)


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = set(scopes)
    unknown = sorted(chosen - set(ALL_SCOPES))
    if unknown:
        raise ValidationFailed(
            "Unknown API key scope.", details={"scopes": unknown, "allowed": list(ALL_SCOPES)}
        )
    if not chosen:
        raise ValidationFailed("An API key needs at least one scope.", details={"scopes": []})
    return [scope for scope in ALL_SCOPES if scope in chosen]


def create_api_key(
    *,
    user: User,
    name: str,
    org_id: str | None = None,
    expires_at: datetime | None = None,
    scopes: Iterable[str] = DEFAULT_SCOPES,
) -> tuple[ApiKey, str]:
    """Mint a key for ``user``; returns the row and the raw key, which is never seen again.

    An org scope needs an org the user can see (an active membership, or a system admin's);
    ``expires_at`` must be in the future.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed("An API key needs a name of 1-100 characters.", details={"name": name})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(
            "expires_at must be in the future.", details={"expires_at": expires_at.isoformat()}
        )
    clean_scopes = _clean_scopes(scopes)
    if org_id is not None:
        org_id = org_access(user=user, org_id=org_id).org.id
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        key = ApiKey.objects.create(
            user=user,
            org_id=org_id,
            name=name,
            prefix=raw_key[:DISPLAY_PREFIX_LENGTH],
            key_hash=hash_api_key(raw_key),
            scopes=clean_scopes,
            expires_at=expires_at,
        )
        record_audit_event(
            action="api_key.created",
            actor=user,
            org_id=org_id,
            target_type="api_key",
            target_id=key.pk,
            metadata={
                "name": name,
                "prefix": key.prefix,
                "scopes": clean_scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return key, raw_key


def revoke_api_key(*, key_id: int, actor: User | None, actor_label: str = "") -> ApiKey:
    """Revoke a key for good. Revoking a revoked key changes nothing and answers it as it is.
    Callers check that ``actor`` may revoke it (its owner, an admin of its org, ops)."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update(of=("self",)).select_related("user").filter(pk=key_id).first()
        if key is None:
            raise ApiKeyNotFound(details={"key_id": key_id})
        if key.revoked_at is not None:
            return key
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        record_audit_event(
            action="api_key.revoked",
            actor=actor,
            actor_label=actor_label,
            org_id=key.org_id,
            target_type="api_key",
            target_id=key.pk,
            metadata={"name": key.name, "prefix": key.prefix, "owner": key.user.username},
        )
    return key


_KEY = Columns(ApiKey, "k")
_KEY_USER = Columns(User, "u")


@cache
def _key_with_user_sql() -> str:
    """The key and its user in one prepared statement (every API-key request runs it)."""
    return (
        f"SELECT {_KEY.sql}, {_KEY_USER.sql} FROM api_keys k JOIN users u ON u.id = k.user_id"
        " WHERE k.key_hash = %(key_hash)s"
    )


def authenticate_api_key(raw_key: str) -> ApiKey | None:
    """The usable key ``raw_key`` is, with its user loaded; None when it is malformed,
    unknown, revoked or expired, or its user is deactivated. Notes the use in ``last_used_at``
    (at most once a minute, so a busy key does not write on every request)."""
    if not KEY_PATTERN.fullmatch(raw_key):
        return None
    key = key_with_user(hash_api_key(raw_key))
    return usable_key(key) if key is not None else None


def key_with_user(key_hash: str) -> ApiKey | None:
    """The key stored under ``key_hash`` with its user loaded, usable or not (one prepared read)."""
    rows = fetch_instances(_key_with_user_sql(), {"key_hash": key_hash}, _KEY, _KEY_USER)
    if not rows:
        return None
    key, user = rows[0]
    key.user = user
    return key


def usable_key(key: ApiKey) -> ApiKey | None:
    """``key`` if it may be used now (not revoked or expired, its user active), noting the use
    as ``authenticate_api_key`` does; else None."""
    now = timezone.now()
    if (
        key.revoked_at is not None
        or (key.expires_at is not None and key.expires_at <= now)
        or not key.user.is_active
    ):
        return None
    stale = now - LAST_USED_PRECISION
    if key.last_used_at is None or key.last_used_at <= stale:
        # Conditional, so concurrent requests of one key write once between them.
        ApiKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)
        ).update(last_used_at=now)
        key.last_used_at = now
    return key
