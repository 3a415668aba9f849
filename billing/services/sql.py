"""Running the ledger's precompiled SQL: one cursor per unit, every statement prepared.

The hot paths (``deduct_credits``, and the reserve/settle fast paths of ``holds``) are written
as a few conditional statements inside the caller's ``transaction.atomic()`` block. A
statement that changes nothing raises ``NotApplied``, which rolls the attempt back; the caller
then works out why on the ORM path (a replay, a typed refusal, or a state that moved).

Statements are prepared once per connection (``orgbilling.db``, ``LEDGER_PREPARED_STATEMENTS``).
"""

from typing import Any

from orgbilling.db import execute
from orgbilling.db import prepared_cursor as ledger_cursor

# Which allocation may spend ``amount`` for ``user_id`` in ``org_id`` (the table aliased ``a``):
# the active, unexpired allocation of an active member, with that much free.
SPENDABLE_ALLOCATION = """
    a.org_id = %(org_id)s AND a.user_id = %(user_id)s AND a.is_active
    AND (a.expires_at IS NULL OR a.expires_at > %(now)s)
    AND a.allocated_credits - a.used_credits - a.reserved_credits >= %(amount)s
    AND EXISTS (
        SELECT 1 FROM organization_members m
         WHERE m.org_id = a.org_id AND m.user_id = a.user_id AND m.status = 'active'
    )
"""

# The attribution row of a charge (a deduction or a settled hold), unless its request id was
# charged before: whoever wrote that row held the same lock first and has committed by now.
_INSERT_CHARGE = """
    INSERT INTO credit_usage_attribution (
        org_id, user_id, allocation_id, service_type, service_name, input_tokens, output_tokens,
        credits_used, balance_after, request_id, request_metadata, created_at
    ) VALUES (
        %(org_id)s, %(user_id)s, %(allocation_id)s, %(service_type)s, %(service_name)s,
        %(input_tokens)s, %(output_tokens)s, %(amount)s, %(balance_after)s, %(request_id)s,
        %(metadata)s, %(now)s
    )
"""
INSERT_ORG_CHARGE = (
    _INSERT_CHARGE + "ON CONFLICT (org_id, request_id) WHERE org_id IS NOT NULL DO NOTHING RETURNING id"
)
INSERT_INDIVIDUAL_CHARGE = (
    _INSERT_CHARGE + "ON CONFLICT (user_id, request_id) WHERE org_id IS NULL DO NOTHING RETURNING id"
)


class NotApplied(Exception):
    """A conditional statement matched no row; raised inside ``atomic()`` to roll back."""


__all__ = [
    "INSERT_INDIVIDUAL_CHARGE",
    "INSERT_ORG_CHARGE",
    "SPENDABLE_ALLOCATION",
    "NotApplied",
    "fetch_one",
    "ledger_cursor",
]


def fetch_one(cursor: Any, sql: str, params: dict[str, Any]) -> tuple[Any, ...]:
    """Run ``sql`` and return its one row, or raise ``NotApplied``."""
    execute(cursor, sql, params)
    row = cursor.fetchone()
    if row is None:
        raise NotApplied
    return tuple(row)
