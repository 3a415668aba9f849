"""The fast paths of ``reserve_credits`` and ``settle_reservation``: conditional SQL statements
run inside the caller's ``transaction.atomic()`` block, in the ledger's lock order
(``billing.services.locks``). They cover the common case only (a hold that fits; a held
reservation settled at a cost the payer can pay) and raise ``NotApplied`` for anything else;
the caller then rolls back and takes the ORM path, which replays, refuses with a typed error,
or settles the unusual cases (late settlement, a cost above what is free, a foreign charge).

Hold (level 2 only, like the ORM path):
1. ``HOLD_ALLOCATION`` locks the active allocation of an active member of an active org and
   adds to ``reserved_credits`` if its free credits cover the amount;
2. ``INSERT_ORG_HOLD`` adds the reservation unless the request id was charged or held before.

Settle (pool → allocation → reservation):
1. ``SETTLE_POOL`` locks the pool and counts the charge in ``used_credits``;
2. ``SETTLE_ALLOCATION`` moves the hold out of ``reserved_credits`` and the charge into
   ``used_credits``, if what is free with the hold returned covers the charge;
3. the attribution row (``billing.services.sql.INSERT_ORG_CHARGE``);
4. ``FINISH_RESERVATION`` marks the reservation settled, only if it was still held.
"""

from dataclasses import dataclass
from typing import Any

from billing.services.sql import INSERT_INDIVIDUAL_CHARGE, INSERT_ORG_CHARGE, fetch_one

HOLD_ALLOCATION = """
    UPDATE user_credit_allocations AS a
       SET reserved_credits = a.reserved_credits + %(amount)s, updated_at = %(now)s
     WHERE a.org_id = %(org_id)s AND a.user_id = %(user_id)s AND a.is_active
       AND (a.expires_at IS NULL OR a.expires_at > %(now)s)
       AND a.allocated_credits - a.used_credits - a.reserved_credits >= %(amount)s
       AND EXISTS (
           SELECT 1 FROM organization_members m
            WHERE m.org_id = a.org_id AND m.user_id = a.user_id AND m.status = 'active'
       )
       AND EXISTS (SELECT 1 FROM organizations o WHERE o.id = a.org_id AND o.is_active)
    RETURNING a.id, a.allocated_credits - a.used_credits - a.reserved_credits
"""

HOLD_INDIVIDUAL = """
    UPDATE individual_credit_balances
       SET reserved_credits = reserved_credits + %(amount)s, updated_at = %(now)s
     WHERE user_id = %(user_id)s AND total_credits - used_credits - reserved_credits >= %(amount)s
    RETURNING NULL::bigint, total_credits - used_credits - reserved_credits
"""

# A new statement, so a new snapshot: a charge committed under the same request id by whoever
# held the lock before us is visible here (READ COMMITTED).
_INSERT_HOLD = """
    INSERT INTO credit_reservations (
        org_id, user_id, allocation_id, request_id, amount, status, credits_charged, expires_at,
        created_at
    )
    SELECT %(org_id)s::varchar, %(user_id)s::bigint, %(allocation_id)s::bigint, %(request_id)s::varchar,
           %(amount)s::bigint, 'held', 0, %(expires_at)s::timestamptz, %(now)s::timestamptz
     WHERE NOT EXISTS (
           SELECT 1 FROM credit_usage_attribution c
            WHERE c.request_id = %(request_id)s::varchar AND {payer}
     )
"""
INSERT_ORG_HOLD = (
    _INSERT_HOLD.format(payer="c.org_id = %(org_id)s::varchar")
    + "ON CONFLICT (org_id, request_id) WHERE org_id IS NOT NULL DO NOTHING RETURNING id"
)
INSERT_INDIVIDUAL_HOLD = (
    _INSERT_HOLD.format(payer="c.org_id IS NULL AND c.user_id = %(user_id)s::bigint")
    + "ON CONFLICT (user_id, request_id) WHERE org_id IS NULL DO NOTHING RETURNING id"
)

READ_RESERVATION = """
    SELECT org_id, user_id, allocation_id, amount, request_id
      FROM credit_reservations WHERE id = %(reservation_id)s AND status = 'held'
"""

SETTLE_POOL = """
    UPDATE organization_credit_pools
       SET used_credits = used_credits + %(amount)s, updated_at = %(now)s
     WHERE org_id = %(org_id)s AND used_credits + %(amount)s <= allocated_credits
    RETURNING org_id
"""

_SETTLE_FREE = "- {used} - reserved_credits + %(held)s >= %(amount)s AND reserved_credits >= %(held)s"
SETTLE_ALLOCATION = f"""
    UPDATE user_credit_allocations
       SET used_credits = used_credits + %(amount)s, reserved_credits = reserved_credits - %(held)s,
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

FINISH_RESERVATION = """
    UPDATE credit_reservations
       SET status = 'settled', credits_charged = %(amount)s, credits_requested = %(amount)s,
           attribution_id = %(attribution_id)s, finished_at = %(now)s
     WHERE id = %(reservation_id)s AND status = 'held'
    RETURNING id
"""


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
    individual = params["org_id"] is None
    params["allocation_id"], free = fetch_one(
        cursor, HOLD_INDIVIDUAL if individual else HOLD_ALLOCATION, params
    )
    (reservation_id,) = fetch_one(cursor, INSERT_INDIVIDUAL_HOLD if individual else INSERT_ORG_HOLD, params)
    return reservation_id, free


def read_held(cursor: Any, reservation_id: int) -> HeldReservation:
    org_id, user_id, allocation_id, amount, request_id = fetch_one(
        cursor, READ_RESERVATION, {"reservation_id": reservation_id}
    )
    return HeldReservation(reservation_id, org_id, user_id, allocation_id, amount, request_id)


def settle(cursor: Any, reservation: HeldReservation, params: dict[str, Any]) -> Settled:
    """Charge ``amount`` against a held reservation and free the hold. ``params`` carries the
    charge columns (amount, service type/name, tokens, metadata, now)."""
    params.update(
        reservation_id=reservation.reservation_id,
        org_id=reservation.org_id,
        user_id=reservation.user_id,
        allocation_id=reservation.allocation_id,
        held=reservation.amount,
        request_id=reservation.request_id,
    )
    if reservation.org_id is None:
        row = fetch_one(cursor, SETTLE_INDIVIDUAL, params)
        insert = INSERT_INDIVIDUAL_CHARGE
    else:
        fetch_one(cursor, SETTLE_POOL, params)
        row = fetch_one(cursor, SETTLE_ALLOCATION, params)
        insert = INSERT_ORG_CHARGE
    allocation_id, allocated, used, free = row
    params["balance_after"] = free
    (attribution_id,) = fetch_one(cursor, insert, params)
    params["attribution_id"] = attribution_id
    fetch_one(cursor, FINISH_RESERVATION, params)
    return Settled(attribution_id, allocation_id, allocated, used, free)
