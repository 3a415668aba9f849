"""The ledger's precompiled SQL and how it runs: one cursor per unit, every statement prepared.

The hot paths (``deduct_credits``, and the reserve/settle fast paths of ``holds``) are written
as a few conditional statements inside the caller's ``transaction.atomic()`` block. A
statement that changes nothing raises ``NotApplied``, which rolls the attempt back; the caller
then works out why on the ORM path (a replay, a typed refusal, or a state that moved).

Statements are prepared once per connection (``orgbilling.db``, ``LEDGER_PREPARED_STATEMENTS``).
"""

from typing import Any

from billing.ledger.eligibility import ACTIVE_ORG, SPENDABLE_ALLOCATION, SPENDABLE_INDIVIDUAL, day_spent_sql
from orgbilling.db import execute
from orgbilling.db import prepared_cursor as ledger_cursor

# The attribution row of a charge (a deduction or a settled hold), unless its request id was
# charged before: whoever wrote that row held the same lock first and has committed by now.
_INSERT_CHARGE = """
    INSERT INTO credit_usage_attribution (
        org_id, user_id, allocation_id, service_type, service_name, input_tokens, output_tokens,
        cached_tokens, cache_write_tokens, audio_input_tokens, reasoning_tokens, audio_output_tokens,
        credits_used, balance_after, request_id, request_metadata, created_at
    ) VALUES (
        %(org_id)s, %(user_id)s, %(allocation_id)s, %(service_type)s, %(service_name)s,
        %(input_tokens)s, %(output_tokens)s, %(cached_tokens)s, %(cache_write_tokens)s,
        %(audio_input_tokens)s, %(reasoning_tokens)s, %(audio_output_tokens)s,
        %(amount)s, %(balance_after)s, %(request_id)s, %(metadata)s, %(now)s
    )
"""
INSERT_ORG_CHARGE = (
    _INSERT_CHARGE + "ON CONFLICT (org_id, request_id) WHERE org_id IS NOT NULL DO NOTHING RETURNING id"
)
INSERT_INDIVIDUAL_CHARGE = (
    _INSERT_CHARGE + "ON CONFLICT (user_id, request_id) WHERE org_id IS NULL DO NOTHING RETURNING id"
)


# ``deduct_credits`` (lock order pool → allocation; see ``billing.ledger.deduction``).
CHARGE_POOL = f"""
    UPDATE organization_credit_pools
       SET used_credits = used_credits + %(amount)s, updated_at = %(now)s
     WHERE org_id = %(org_id)s AND used_credits + %(amount)s <= allocated_credits
       AND {ACTIVE_ORG}
    RETURNING org_id
"""

# Every charge and hold also counts in the allocation's spend of the day (its daily cap).
COUNT_IN_DAY = f"cap_day = %(today)s, cap_day_spent = {day_spent_sql()} + %(amount)s"

CHARGE_ALLOCATION = f"""
    UPDATE user_credit_allocations AS a
       SET used_credits = a.used_credits + %(amount)s, {COUNT_IN_DAY}, updated_at = %(now)s
     WHERE {SPENDABLE_ALLOCATION}
    RETURNING a.id, a.allocated_credits, a.used_credits,
              a.allocated_credits - a.used_credits - a.reserved_credits
"""

CHARGE_INDIVIDUAL = f"""
    UPDATE individual_credit_balances
       SET used_credits = used_credits + %(amount)s, updated_at = %(now)s
     WHERE user_id = %(user_id)s AND {SPENDABLE_INDIVIDUAL}
    RETURNING NULL::bigint, total_credits, used_credits, total_credits - used_credits - reserved_credits
"""


class NotApplied(Exception):
    """A conditional statement matched no row; raised inside ``atomic()`` to roll back."""


__all__ = [
    "CHARGE_ALLOCATION",
    "CHARGE_INDIVIDUAL",
    "CHARGE_POOL",
    "INSERT_INDIVIDUAL_CHARGE",
    "INSERT_ORG_CHARGE",
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
