"""Verifying Lago's webhook signatures (the client library has no helper for it).

``X-Lago-Signature-Algorithm: jwt`` (Lago's default): ``X-Lago-Signature`` is an RS256 JWT,
issuer ``https://api.getlago.com``, whose ``data`` claim is the raw body; the key is Lago's
public key (``client.webhooks.public_key()``), cached. ``hmac``: the header is the base64
HMAC-SHA256 of the raw body with the webhook's HMAC token (``LAGO_WEBHOOK_HMAC_SECRET``).
Only the algorithm pinned by ``LAGO_WEBHOOK_SIGNATURE`` is accepted; the header may repeat it.
"""

import base64
import hashlib
import hmac
import logging

import jwt
from django.conf import settings

from billing.clients.lago import fetch_webhook_public_key, lago_configured
from billing.errors import InvalidWebhookSignature, WebhookNotConfigured
from orgbilling.cache import optional_add, optional_get, optional_set

logger = logging.getLogger(__name__)

PUBLIC_KEY_CACHE_KEY = "lago:webhook-public-key"
# A signature that fails with the cached key is re-checked with a fresh key (Lago rotated it),
# but the key is fetched again at most this often, so bad signatures cannot hammer Lago. While
# the cache is unavailable the key is fetched for every event (a miss) and never re-fetched
# after a failure: the key just fetched is already Lago's current one.
REFETCH_LOCK_KEY = "lago:webhook-public-key:refetched"
REFETCH_MIN_SECONDS = 300


def _public_key(*, refresh: bool = False) -> str:
    key = None if refresh else optional_get(PUBLIC_KEY_CACHE_KEY, consumer="lago webhook key")
    if key is None:
        key = fetch_webhook_public_key().decode()
        optional_set(
            PUBLIC_KEY_CACHE_KEY,
            key,
            settings.LAGO_WEBHOOK_PUBLIC_KEY_CACHE_SECONDS,
            consumer="lago webhook key",
        )
    return str(key)


def _decode_jwt(token: str, key: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        issuer=settings.LAGO_WEBHOOK_JWT_ISSUER,
        options={"require": ["iss", "data"]},
    )
    return claims


def _verify_jwt(body: bytes, token: str) -> None:
    if not lago_configured():
        raise WebhookNotConfigured(details={"provider": "lago", "missing": "LAGO_API_URL/LAGO_API_KEY"})
    try:
        jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidWebhookSignature(details={"algorithm": "jwt"}) from None
    key = _public_key()
    try:
        claims = _decode_jwt(token, key)
    except jwt.InvalidSignatureError:
        if not optional_add(REFETCH_LOCK_KEY, True, REFETCH_MIN_SECONDS, consumer="lago webhook key"):
            raise InvalidWebhookSignature(details={"algorithm": "jwt"}) from None
        try:
            claims = _decode_jwt(token, _public_key(refresh=True))
        except jwt.InvalidTokenError:
            raise InvalidWebhookSignature(details={"algorithm": "jwt"}) from None
    except jwt.InvalidTokenError:
        raise InvalidWebhookSignature(details={"algorithm": "jwt"}) from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWebhookSignature(details={"algorithm": "jwt"}) from None
    if not hmac.compare_digest(str(claims.get("data", "")).encode(), text.encode()):
        raise InvalidWebhookSignature("The signed data is not this body.", details={"algorithm": "jwt"})


def _verify_hmac(body: bytes, signature: str) -> None:
    secret = settings.LAGO_WEBHOOK_HMAC_SECRET
    if not secret:
        raise WebhookNotConfigured(details={"provider": "lago", "missing": "LAGO_WEBHOOK_HMAC_SECRET"})
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise InvalidWebhookSignature(details={"algorithm": "hmac"})


def verify_lago_signature(*, body: bytes, signature: str | None, algorithm: str | None) -> None:
    """Raise ``InvalidWebhookSignature`` unless Lago signed exactly this body."""
    if not signature:
        raise InvalidWebhookSignature("X-Lago-Signature is missing.")
    pinned = settings.LAGO_WEBHOOK_SIGNATURE
    claimed = (algorithm or pinned).strip().lower()
    if claimed != pinned:
        raise InvalidWebhookSignature(
            "X-Lago-Signature-Algorithm is not the algorithm configured for this endpoint.",
            details={"algorithm": claimed[:20], "expected": pinned},
        )
    if pinned == "jwt":
        _verify_jwt(body, signature)
    else:
        _verify_hmac(body, signature)
