"""The ledger's SQL functions, written from the statements of ``billing.ledger.holds`` (which
compose the spending rule of ``billing.ledger.eligibility``): one source for the rule, and each
fast path one round trip (``ledger_hold``, ``ledger_settle``).

A statement's ``%(name)s`` placeholders become the function's ``p_name`` parameters or
variables. The migration that installs a version keeps its text frozen (a migration must not
change under a deployed database); ``tests/billing/test_ledger_functions.py`` checks that the
installed bodies are the ones written here, so a change to the rule or to a statement without a
new migration fails the tests.
"""

import re

from billing.ledger.charges import EXHAUSTION_THRESHOLD_PERCENT, TOKEN_DETAILS
from billing.ledger.holds import (
    CHARGE_AND_FINISH_INDIVIDUAL,
    CHARGE_AND_FINISH_ORG,
    HOLD_INDIVIDUAL_LOCK,
    HOLD_ORG_LOCK,
    INSERT_HOLD_INDIVIDUAL,
    INSERT_HOLD_ORG,
    NOT_APPLIED_MESSAGE,
    SETTLE_ALLOCATION,
    SETTLE_INDIVIDUAL,
    SETTLE_POOL,
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def plpgsql(statement: str) -> str:
    """``statement`` with its placeholders as ``p_`` variables."""
    body = _PLACEHOLDER.sub(r"p_\1", statement.strip())
    if "%" in body:
        raise ValueError(f"a placeholder the function cannot bind is left in: {body}")
    return body


def _indent(text: str, spaces: int) -> str:
    return "\n".join((" " * spaces + line.strip()) if line.strip() else "" for line in text.splitlines())


_NOT_APPLIED = f"RAISE EXCEPTION '{NOT_APPLIED_MESSAGE}'"

HOLD_BODY = f"""
DECLARE
    p_allocation_id bigint;
BEGIN
    IF p_generation IS NOT NULL THEN
        -- The caller's cached reads must be current: a change committed since they were made
        -- (a key revoked, a member suspended, a price changed) applies to this call.
        SELECT generation INTO o_generation FROM gateway_cache_generation WHERE id = 1;
        IF o_generation IS DISTINCT FROM p_generation THEN
            RETURN;
        END IF;
    END IF;
    IF p_org_id IS NULL THEN
{_indent(plpgsql(HOLD_INDIVIDUAL_LOCK), 8)}
        INTO p_allocation_id, o_free;
    ELSE
{_indent(plpgsql(HOLD_ORG_LOCK), 8)}
        INTO p_allocation_id, o_free;
    END IF;
    IF NOT FOUND THEN
        o_free := NULL;
        RETURN;  -- refused: nothing changed (the ORM path says why)
    END IF;
    IF p_org_id IS NULL THEN
{_indent(plpgsql(INSERT_HOLD_INDIVIDUAL), 8)}
        INTO o_reservation_id;
    ELSE
{_indent(plpgsql(INSERT_HOLD_ORG), 8)}
        INTO o_reservation_id;
    END IF;
    IF NOT FOUND THEN
        {_NOT_APPLIED};  -- held or charged before: the hold above is rolled back
    END IF;
END
"""

_DETAIL_PARAMETERS = ", ".join(f"p_{name} bigint" for name in TOKEN_DETAILS)

SETTLE_BODY = f"""
DECLARE
    p_org_id varchar;
    p_user_id bigint;
    p_allocation_id bigint;
    p_held bigint;
    p_held_today bigint;
    p_request_id varchar;
    p_balance_after bigint;
    v_held_at timestamptz;
BEGIN
    SELECT org_id, user_id, allocation_id, amount, request_id, created_at
      INTO p_org_id, p_user_id, p_allocation_id, p_held, p_request_id, v_held_at
      FROM credit_reservations WHERE id = p_reservation_id AND status = 'held';
    IF NOT FOUND THEN
        RETURN;  -- not held (settled, released, expired, unknown): the ORM path
    END IF;
    IF p_org_id IS NOT NULL THEN
{_indent(plpgsql(SETTLE_POOL), 8)};
        IF NOT FOUND THEN
            RETURN;  -- the pool cannot take it: nothing changed
        END IF;
    END IF;
    -- The held amount counted in the day's spend if the hold was taken on the settling day.
    p_held_today := CASE WHEN (v_held_at AT TIME ZONE 'UTC')::date = p_today THEN p_held ELSE 0 END;
    IF p_org_id IS NULL THEN
{_indent(plpgsql(SETTLE_INDIVIDUAL), 8)}
        INTO o_allocation_id, o_allocated, o_used, o_free;
    ELSE
{_indent(plpgsql(SETTLE_ALLOCATION), 8)}
        INTO o_allocation_id, o_allocated, o_used, o_free;
    END IF;
    IF NOT FOUND THEN
        {_NOT_APPLIED};
    END IF;
    IF o_allocation_id IS NOT NULL AND o_allocated > 0
       AND (o_used - p_amount) * 100 < o_allocated * {EXHAUSTION_THRESHOLD_PERCENT}
       AND o_allocated * {EXHAUSTION_THRESHOLD_PERCENT} <= o_used * 100 THEN
        {_NOT_APPLIED};  -- crosses the exhaustion threshold: the ORM path writes its audit event
    END IF;
    p_balance_after := o_free;
    p_metadata := p_metadata || jsonb_build_object('held_credits', p_held);
    IF p_org_id IS NULL THEN
{_indent(plpgsql(CHARGE_AND_FINISH_INDIVIDUAL), 8)}
        INTO o_attribution_id;
    ELSE
{_indent(plpgsql(CHARGE_AND_FINISH_ORG), 8)}
        INTO o_attribution_id;
    END IF;
    IF NOT FOUND THEN
        {_NOT_APPLIED};  -- charged under this request id before, or settled meanwhile
    END IF;
    o_org_id := p_org_id;
    o_user_id := p_user_id;
    o_held := p_held;
    o_request_id := p_request_id;
END
"""

HOLD_SIGNATURE = """ledger_hold(
    p_generation bigint, p_org_id varchar, p_user_id bigint, p_amount bigint, p_request_id varchar,
    p_now timestamptz, p_expires_at timestamptz, p_today date,
    OUT o_generation bigint, OUT o_reservation_id bigint, OUT o_free bigint
)"""
SETTLE_SIGNATURE = f"""ledger_settle(
    p_reservation_id bigint, p_amount bigint, p_now timestamptz, p_today date,
    p_service_type varchar, p_service_name varchar, p_input_tokens bigint, p_output_tokens bigint,
    {_DETAIL_PARAMETERS}, p_metadata jsonb,
    OUT o_attribution_id bigint, OUT o_org_id varchar, OUT o_user_id bigint,
    OUT o_allocation_id bigint, OUT o_held bigint, OUT o_request_id varchar,
    OUT o_allocated bigint, OUT o_used bigint, OUT o_free bigint
)"""

# name: (signature, body)
FUNCTIONS = {"ledger_hold": (HOLD_SIGNATURE, HOLD_BODY), "ledger_settle": (SETTLE_SIGNATURE, SETTLE_BODY)}


def create_sql(name: str) -> str:
    signature, body = FUNCTIONS[name]
    return f"CREATE OR REPLACE FUNCTION {signature}\nLANGUAGE plpgsql AS $function${body}$function$"
