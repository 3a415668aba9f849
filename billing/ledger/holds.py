"""The fast paths of ``reserve_credits`` and ``settle_reservation``: conditional SQL statements
run inside the caller's ``transaction.atomic()`` block, in the ledger's lock order
(``billing.ledger.locks``). They cover the common case only (a hold that fits; a held
reservation settled at a cost the payer can pay) and raise ``NotApplied`` for anything else;
the caller then rolls back and takes the ORM path, which replays, refuses with a typed error,
or settles the unusual cases (late settlement, a cost above what is free, a foreign charge).

Hold (level 2 only, like the ORM path), one statement: ``HOLD_ORG`` locks the active
allocation of an active member of an active org, adds to ``reserved_credits`` if its free
credits cover the amount, and inserts the reservation unless the request id was held before
(``ON CONFLICT``) or charged (``NOT EXISTS``; a charge committed while we waited for the lock is
caught at settlement instead, where the attribution insert conflicts and the ORM path releases
the hold).

Settle (pool → allocation → reservation), three statements:
1. ``SETTLE_POOL`` reads the held reservation and, for an org, locks the pool and counts the
   charge in ``used_credits``;
2. ``SETTLE_ALLOCATION`` (or ``SETTLE_INDIVIDUAL``) moves the hold out of ``reserved_credits``
   and the charge into ``used_credits``, if what is free with the hold returned covers it;
3. ``CHARGE_AND_FINISH_ORG`` appends the attribution row and marks the reservation settled,
   only if it was still held.
The statements of one transaction depend on each other's output, so PostgreSQL runs each
statement's parts in that order; no lock of an earlier level is taken after a later one.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    fetch_one,
)

_HOLD = """
    WITH held AS ({lock})
    INSERT INTO credit_reservations (
        org_id, user_id, allocation_id, request_id, amount, status, credits_charged, expires_at,
        created_at
    )
    SELECT %(org_id)s::varchar, %(user_id)s::bigint, held.id, %(request_id)s::varchar,
           %(amount)s::bigint, 'held', 0, %(expires_at)s::timestamptz, %(now)s::timestamptz
      FROM held
     WHERE NOT EXISTS (
           SELECT 1 FROM credit_usage_attribution c WHERE c.request_id = %(request_id)s::varchar AND {payer}
     )
    ON CONFLICT {conflict} DO NOTHING
    RETURNING id, (SELECT free FROM held)
"""
HOLD_ORG = _HOLD.format(
    lock=f"""
        UPDATE user_credit_allocations AS a
           SET reserved_credits = a.reserved_credits + %(amount)s, {COUNT_IN_DAY}, updated_at = %(now)s
         WHERE {SPENDABLE_ALLOCATION}
           AND {ACTIVE_ORG}
        RETURNING a.id, a.allocated_credits - a.used_credits - a.reserved_credits AS free
    """,
    payer="c.org_id = %(org_id)s::varchar",
    conflict="(org_id, request_id) WHERE org_id IS NOT NULL",
)
HOLD_INDIVIDUAL = _HOLD.format(
    lock=f"""
        UPDATE individual_credit_balances
           SET reserved_credits = reserved_credits + %(amount)s, updated_at = %(now)s
         WHERE user_id = %(user_id)s AND {SPENDABLE_INDIVIDUAL}
        RETURNING NULL::bigint AS id, total_credits - used_credits - reserved_credits AS free
    """,
    payer="c.org_id IS NULL AND c.user_id = %(user_id)s::bigint",
    conflict="(user_id, request_id) WHERE org_id IS NULL",
)

# The reservation (if still held) and, for an org, the pool charged: 1 when the pool took it.
SETTLE_POOL = """
    WITH r AS (
        SELECT org_id, user_id, allocation_id, amount, request_id, created_at
          FROM credit_reservations WHERE id = %(reservation_id)s AND status = 'held'
    ), pool AS (
        UPDATE organization_credit_pools p
           SET used_credits = p.used_credits + %(amount)s, updated_at = %(now)s
          FROM r
         WHERE p.org_id = r.org_id AND p.used_credits + %(amount)s <= p.allocated_credits
        RETURNING p.org_id
    )
    SELECT r.org_id, r.user_id, r.allocation_id, r.amount, r.request_id, r.created_at,
           (SELECT count(*) FROM pool)
      FROM r
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


def hold(cursor: Any, params: dict[str, Any]) -> tuple[int, int]:
    """Hold ``amount`` for ``user_id`` in ``org_id`` (None: individual credits) under a new
    ``request_id``. Returns (reservation id, free credits after the hold)."""
    sql = HOLD_INDIVIDUAL if params["org_id"] is None else HOLD_ORG
    params["today"] = utc_day(params["now"])  # the day the hold counts in (daily cap)
    reservation_id, free = fetch_one(cursor, sql, params)
    return reservation_id, free


def settle(
    cursor: Any, reservation_id: int, params: dict[str, Any], metadata: Callable[[HeldReservation], Any]
) -> tuple[HeldReservation, Settled]:
    """Charge ``params["amount"]`` against a held reservation and free the hold. ``params``
    carries the charge columns (service type/name, tokens, now); ``metadata`` makes the row's
    metadata from the reservation; a token breakdown column it lacks is 0."""
    params["reservation_id"] = reservation_id
    for name in TOKEN_DETAILS:
        params.setdefault(name, 0)
    row = fetch_one(cursor, SETTLE_POOL, params)
    org_id, user_id, allocation_id, amount, request_id, held_at, pool_charged = row
    if org_id is not None and not pool_charged:
        raise NotApplied
    held = HeldReservation(reservation_id, org_id, user_id, allocation_id, amount, request_id)
    today = utc_day(params["now"])
    params.update(
        org_id=org_id,
        user_id=user_id,
        allocation_id=allocation_id,
        held=amount,
        request_id=request_id,
        today=today,
        held_today=amount if utc_day(held_at) == today else 0,
    )
    row = fetch_one(cursor, SETTLE_INDIVIDUAL if org_id is None else SETTLE_ALLOCATION, params)
    allocation_id, allocated, used, free = row
    params["balance_after"] = free
    params["metadata"] = metadata(held)
    finish = CHARGE_AND_FINISH_INDIVIDUAL if org_id is None else CHARGE_AND_FINISH_ORG
    (attribution_id,) = fetch_one(cursor, finish, params)
    return held, Settled(attribution_id, allocation_id, allocated, used, free)
