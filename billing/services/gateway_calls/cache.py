"""The gateway's per-call reads, cached in the process: API key → key and user, who pays for a
user (the payer resolution's answer), a model's price row.

Every change to those (a key revoked or rescoped, a user deactivated, a membership added,
suspended or made default, an organization deactivated, a price edited) bumps one counter row,
``gateway_cache_generation``, in the changing transaction (triggers, billing migration 0020).
A call starts from the last generation this process read (``view``, no round trip) and uses
only entries filled under it; the hold checks, in the same statement that takes it, that the
generation is still current (``ledger_hold``), and when it moved nothing is held: the call
reads again under the new generation (``moved_to``) and retries. A call refused before its hold
(a key unknown, out of scope, no payer) first checks the generation itself (``still_current``).
So a change committed before a call's hold takes effect on that call, with no time window. The
reads in a call come after its generation was read, so an entry can be newer than its
generation (refilled next time), never older.

Even a stale answer could not overdraw or give a call away: the hold re-checks the member, the
organization and the funds in the statement that takes it (``billing.ledger.eligibility``).
With ``LLM_GATEWAY_CACHE`` off, or the counter row missing, every call reads the database.
"""

from collections.abc import Callable
from threading import Lock
from typing import Any, TypeVar

from billing.pricing import PriceSnapshot, active_price, price_of
from billing.services.context import BillingContext, ContextSource, resolve_billing_context
from billing.services.gateway_calls.config import setting
from organizations.models import ApiKey, User
from organizations.services.api_keys import KEY_PATTERN, hash_api_key, key_with_user, usable_key
from orgbilling.db import execute, prepared_cursor

T = TypeVar("T")

GENERATION_SQL = "SELECT generation FROM gateway_cache_generation WHERE id = 1"
MAX_ENTRIES = 50_000  # past this the cache starts over (a memory bound, not an expected size)

_lock = Lock()
_generation: int | None = None
_entries: dict[tuple[Any, ...], Any] = {}


def read_generation() -> int | None:
    """The committed generation now; None when the counter row is missing (cache unused)."""
    with prepared_cursor() as cursor:
        execute(cursor, GENERATION_SQL, {})
        row = cursor.fetchone()
    return int(row[0]) if row is not None else None


class CacheView:
    """One call's view of the cache: entries of one generation. ``verified``: the generation
    was read during this call (not one an earlier call read)."""

    def __init__(self, generation: int | None, *, verified: bool = True) -> None:
        self.generation = generation
        self.verified = verified

    def get(self, key: tuple[Any, ...], load: Callable[[], T | None]) -> T | None:
        """The entry for ``key``, else ``load()`` (stored unless None, or the generation moved)."""
        global _entries
        if self.generation is None:
            return load()
        with _lock:
            current = _generation == self.generation
            found = _entries.get(key) if current else None
        if found is not None:
            return found  # type: ignore[no-any-return]
        value = load()
        if value is not None and current:
            with _lock:
                if _generation == self.generation:
                    if len(_entries) >= MAX_ENTRIES:
                        _entries = {}
                    _entries[key] = value
        return value


def _start(generation: int) -> CacheView:
    """The generation read now: every entry of an older one goes."""
    global _generation, _entries
    with _lock:
        if _generation is None or generation > _generation:
            _generation, _entries = generation, {}
    return CacheView(generation)


def view(*, verified: bool = False) -> CacheView:
    """Start a call under the last generation this process read (no round trip; the hold or
    ``still_current`` checks it); the first call of a process reads it, and so does every call
    with ``verified``."""
    if not setting("LLM_GATEWAY_CACHE"):
        return CacheView(None)
    with _lock:
        known = _generation
    if known is not None and not verified:
        return CacheView(known, verified=False)
    generation = read_generation()
    return CacheView(None) if generation is None else _start(generation)


def known_view() -> CacheView | None:
    """``view`` without any read: None when the cache is off or this process has not read the
    generation yet (the event loop's admission, which must not touch Django's connection)."""
    if not setting("LLM_GATEWAY_CACHE"):
        return None
    with _lock:
        known = _generation
    return CacheView(known, verified=False) if known is not None else None


def moved_to(generation: int | None) -> CacheView:
    """The hold found ``generation`` current instead of the call's: a view of that one."""
    return CacheView(None) if generation is None else _start(generation)


def still_current(cached: CacheView) -> CacheView | None:
    """None when ``cached`` is read now or still current; else a view of the current one."""
    if cached.verified or cached.generation is None:
        return None
    generation = read_generation()
    if generation == cached.generation:
        cached.verified = True
        return None
    return moved_to(generation)


def clear() -> None:
    """Forget everything (tests; a process that wants to start cold)."""
    global _generation, _entries
    with _lock:
        _generation, _entries = None, {}


def api_key(cached: CacheView, raw_key: str) -> ApiKey | None:
    """``authenticate_api_key`` through the cache: the usable key ``raw_key`` is, with its user."""
    if not KEY_PATTERN.fullmatch(raw_key):
        return None
    key_hash = hash_api_key(raw_key)
    key = cached.get(("key", key_hash), lambda: key_with_user(key_hash))
    return usable_key(key) if key is not None else None  # expiry is judged at each call


def payer(cached: CacheView, *, user: User, requested_org_id: str | None) -> BillingContext:
    """``resolve_billing_context`` through the cache (a refusal is not cached: it raises)."""

    def load() -> tuple[str | None, ContextSource]:
        context = resolve_billing_context(user=user, requested_org_id=requested_org_id)
        return context.org_id, context.source

    org_id, source = cached.get(("payer", user.pk, requested_org_id), load)  # type: ignore[misc]
    return BillingContext(user=user, org_id=org_id, source=source)


def price(
    cached: CacheView, model: str, *, size: str | None = None, quality: str | None = None
) -> PriceSnapshot:
    """``price_for`` through the cache (an unknown model is read each time)."""
    return price_of(
        model, cached.get(("price", model), lambda: active_price(model)), size=size, quality=quality
    )
