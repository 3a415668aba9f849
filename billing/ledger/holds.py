"""The fast paths of ``reserve_credits`` and ``settle_reservation``: one call each of a SQL
function (``ledger_hold``, ``ledger_settle``; ``billing.ledger.functions`` writes them from the
statements below, migration 0023 installs them), so each is **one round trip** to PostgreSQL,
in autocommit mode (inside a caller's transaction, under a savepoint). They run in the ledger's
lock order (``billing.ledger.locks``) and cover the common case only (a hold that fits; a held
reservation settled at a cost the payer can pay): for anything else they change nothing (or
raise, which rolls the statement back) and ``NotApplied`` sends the caller to the ORM path,
which replays, refuses with a typed error, or settles the unusual cases (late settlement, a
cost above what is free, a foreign charge, an allocation crossing its exhaustion threshold,
whose audit event the ORM path writes in the same transaction).

Hold (level 2 only, like the ORM path): with a cache generation (the gateway's), first check
that it is still current (``gateway_cache_generation``) and otherwise do nothing
(``GenerationMoved``); then ``HOLD_ORG_LOCK`` locks the active allocation of an active member of
an active org and adds to ``reserved_credits`` if its free credits cover the amount, and
``INSERT_HOLD`` inserts the reservation unless the request id was held before (``ON CONFLICT``)
or charged (``NOT EXISTS``; a charge committed while we waited for the lock is caught at
settlement instead, where the attribution insert conflicts and the ORM path releases the hold).

Settle (pool → allocation → reservation): read the held reservation; for an org, lock the pool
and count the charge in ``used_credits`` (``SETTLE_POOL``); ``SETTLE_ALLOCATION`` (or
``SETTLE_INDIVIDUAL``) moves the hold out of ``reserved_credits`` and the charge into
``used_credits``, if what is free with the hold returned covers it; ``CHARGE_AND_FINISH_ORG``
appends the attribution row and marks the reservation settled, only if it was still held.
No lock of an earlier level is taken after a later one.
"""

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import psycopg.errors
from django.db import DatabaseError, connection, transaction

from billing.ledger.charges import TOKEN_DETAILS
from billing.ledger.eligibility import (
    ACTIVE_ORG,
    SPENDABLE_ALLOCATION,
    SPENDABLE_INDIVIDUAL,
    day_spent_sql,
    utc_day,
)
from billing.ledger.sql import (
    COUNT_IN_DAY,
    INSERT_INDIVIDUAL_CHARGE,
    INSERT_ORG_CHARGE,
    NotApplied,
    execute,
)

# The account a hold is taken from, locked and charged with the hold: (allocation id, free after).
HOLD_ORG_LOCK = f"""
    UPDATE user_credit_allocations AS a
       SET reserved_credits = a.reserved_credits + %(amount)s, {COUNT_IN_DAY}, updated_at = %(now)s
     WHERE {SPENDABLE_ALLOCATION}
       AND {ACTIVE_ORG}
    RETURNING a.id, a.allocated_credits - a.used_credits - a.reserved_credits
"""
HOLD_INDIVIDUAL_LOCK = f"""
    UPDATE individual_credit_balances
       SET reserved_credits = reserved_credits + %(amount)s, updated_at = %(now)s
     WHERE user_id = %(user_id)s AND {SPENDABLE_INDIVIDUAL}
    RETURNING NULL::bigint, total_credits - used_credits - reserved_credits
"""
# The reservation, unless the request id was held (ON CONFLICT) or charged (NOT EXISTS) before.
_INSERT_HOLD = """
    INSERT INTO credit_reservations (
        org_id, user_id, allocation_id, request_id, amount, status, credits_charged, expires_at,
        created_at
    )
    SELECT %(org_id)s::varchar, %(user_id)s::bigint, %(allocation_id)s::bigint, %(request_id)s::varchar,
           %(amount)s::bigint, 'held', 0, %(expires_at)s::timestamptz, %(now)s::timestamptz
     WHERE NOT EXISTS (
           SELECT 1 FROM credit_usage_attribution c WHERE c.request_id = %(request_id)s::varchar AND {payer}
     )
    ON CONFLICT {conflict} DO NOTHING
    RETURNING id
"""
INSERT_HOLD_ORG = _INSERT_HOLD.format(
    payer="c.org_id = %(org_id)s::varchar", conflict="(org_id, request_id) WHERE org_id IS NOT NULL"
)
INSERT_HOLD_INDIVIDUAL = _INSERT_HOLD.format(
    payer="c.org_id IS NULL AND c.user_id = %(user_id)s::bigint",
    conflict="(user_id, request_id) WHERE org_id IS NULL",
)

# The held reservation's payer org charged in its pool (the reservation read just before).
SETTLE_POOL = """
    UPDATE organization_credit_pools p
       SET used_credits = p.used_credits + %(amount)s, updated_at = %(now)s
     WHERE p.org_id = %(org_id)s AND p.used_credits + %(amount)s <= p.allocated_credits
"""

_SETTLE_FREE = "- {used} - reserved_credits + %(held)s >= %(amount)s AND reserved_credits >= %(held)s"
# The day's spend trades the hold (``held_today``: the held amount if it was counted today) for
# the charge. A settlement is never refused by the cap: the call has run. GREATEST covers holds
# placed before the counter existed.
SETTLE_ALLOCATION = f"""
    UPDATE user_credit_allocations AS a
       SET used_credits = used_credits + %(amount)s, reserved_credits = reserved_credits - %(held)s,
           cap_day = %(today)s,
           cap_day_spent = GREATEST({day_spent_sql()} - %(held_today)s, 0) + %(amount)s,
           updated_at = %(now)s
     WHERE id = %(allocation_id)s AND allocated_credits {_SETTLE_FREE.format(used="used_credits")}
    RETURNING id, allocated_credits, used_credits, allocated_credits - used_credits - reserved_credits
"""
SETTLE_INDIVIDUAL = f"""
    UPDATE individual_credit_balances
       SET used_credits = used_credits + %(amount)s, reserved_credits = reserved_credits - %(held)s,
           updated_at = %(now)s
     WHERE user_id = %(user_id)s AND total_credits {_SETTLE_FREE.format(used="used_credits")}
    RETURNING NULL::bigint, total_credits, used_credits, total_credits - used_credits - reserved_credits
"""

_CHARGE_AND_FINISH = """
    WITH charge AS ({insert})
    UPDATE credit_reservations r
       SET status = 'settled', credits_charged = %(amount)s, credits_requested = %(amount)s,
           attribution_id = charge.id, finished_at = %(now)s
      FROM charge
     WHERE r.id = %(reservation_id)s AND r.status = 'held'
    RETURNING charge.id
"""
CHARGE_AND_FINISH_ORG = _CHARGE_AND_FINISH.format(insert=INSERT_ORG_CHARGE)
CHARGE_AND_FINISH_INDIVIDUAL = _CHARGE_AND_FINISH.format(insert=INSERT_INDIVIDUAL_CHARGE)


# The SQL functions' calls (``billing.ledger.functions``).
CALL_HOLD = """
    SELECT o_generation, o_reservation_id, o_free FROM ledger_hold(
        %(generation)s::bigint, %(org_id)s::varchar, %(user_id)s::bigint, %(amount)s::bigint,
        %(request_id)s::varchar, %(now)s::timestamptz, %(expires_at)s::timestamptz, %(today)s::date
    )
"""
CALL_SETTLE = f"""
    SELECT o_attribution_id, o_org_id, o_user_id, o_allocation_id, o_held, o_request_id,
           o_allocated, o_used, o_free
      FROM ledger_settle(
        %(reservation_id)s::bigint, %(amount)s::bigint, %(now)s::timestamptz, %(today)s::date,
        %(service_type)s::varchar, %(service_name)s::varchar, %(input_tokens)s::bigint,
        %(output_tokens)s::bigint, {", ".join(f"%({name})s::bigint" for name in TOKEN_DETAILS)},
        %(metadata)s::jsonb
    )
"""
# What ``RAISE`` in the functions says when it rolls their work back: the fast path does not apply.
NOT_APPLIED_MESSAGE = "ledger fast path not applied"


class GenerationMoved(Exception):
    """The hold was not taken: the cache generation the caller read under is no longer current."""

    def __init__(self, generation: int | None) -> None:
        super().__init__(generation)
        self.generation = generation


@dataclass(frozen=True)
class HeldReservation:
    """A held reservation as the settlement needs it (these columns never change)."""

    reservation_id: int
    org_id: str | None
    user_id: int
    allocation_id: int | None
    amount: int
    request_id: str


@dataclass(frozen=True)
class Settled:
    attribution_id: int
    allocation_id: int | None
    allocated: int
    used: int
    free: int


def _call(cursor: Any, sql: str, params: dict[str, Any]) -> tuple[Any, ...]:
    """Run one function call: alone in autocommit mode, under a savepoint inside a caller's
    transaction (what it rolls back must not abort the caller's). A ``RAISE`` of the function
    (its work rolled back) comes out as ``NotApplied``."""
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            execute(cursor, sql, params)
            row = cursor.fetchone()
    except DatabaseError as error:
        cause = error.__cause__
        if isinstance(cause, psycopg.errors.RaiseException) and NOT_APPLIED_MESSAGE in str(cause):
            raise NotApplied from None
        raise
    assert row is not None  # a function with OUT parameters returns one row
    return tuple(row)


def hold_params(params: dict[str, Any], generation: int | None) -> dict[str, Any]:
    """``CALL_HOLD``'s parameters (``params``: org_id, user_id, amount, request_id, now, expires_at)."""
    return {**params, "today": utc_day(params["now"]), "generation": generation}  # today: the daily cap's


def held_from(row: tuple[Any, ...], generation: int | None) -> tuple[int, int]:
    """(reservation id, free credits after the hold) from ``CALL_HOLD``'s row."""
    current, reservation_id, free = row
    if generation is not None and current != generation:
        raise GenerationMoved(current)
    if reservation_id is None:
        raise NotApplied
    return reservation_id, free


def hold(cursor: Any, params: dict[str, Any], *, generation: int | None = None) -> tuple[int, int]:
    """Hold ``amount`` for ``user_id`` in ``org_id`` (None: individual credits) under a new
    ``request_id``. Returns (reservation id, free credits after the hold). ``generation``: the
    gateway cache generation the caller's reads came from (``GenerationMoved`` when it moved)."""
    return held_from(_call(cursor, CALL_HOLD, hold_params(params, generation)), generation)


def settle_params(reservation_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """``CALL_SETTLE``'s parameters: ``params`` carries the charge columns (service type/name,
    tokens, now) and ``metadata`` (Jsonb: the row's metadata, to which the function adds
    ``held_credits``); a breakdown column it lacks is 0."""
    full = {"reservation_id": reservation_id, "today": utc_day(params["now"]), **params}
    for name in TOKEN_DETAILS:
        full.setdefault(name, 0)
    return full


def settled_from(reservation_id: int, row: tuple[Any, ...]) -> tuple[HeldReservation, Settled]:
    attribution_id, org_id, user_id, allocation_id, amount, request_id, allocated, used, free = row
    if attribution_id is None:
        raise NotApplied
    held = HeldReservation(reservation_id, org_id, user_id, allocation_id, amount, request_id)
    return held, Settled(attribution_id, allocation_id, allocated, used, free)


def settle(cursor: Any, reservation_id: int, params: dict[str, Any]) -> tuple[HeldReservation, Settled]:
    """Charge ``params["amount"]`` against a held reservation and free the hold (``settle_params``)."""
    return settled_from(reservation_id, _call(cursor, CALL_SETTLE, settle_params(reservation_id, params)))
