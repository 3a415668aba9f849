"""The ledger's fast paths as SQL functions, one round trip each (``billing.ledger.functions``
writes them; this migration keeps the text it wrote, frozen): ``ledger_hold`` (with the gateway
cache's generation check) and ``ledger_settle``. ``tests/billing/test_ledger_functions.py``
checks that the installed bodies still match what ``billing.ledger.functions`` writes.
"""

from django.db import migrations

LEDGER_HOLD = r"""
CREATE OR REPLACE FUNCTION ledger_hold(
    p_generation bigint, p_org_id varchar, p_user_id bigint, p_amount bigint, p_request_id varchar,
    p_now timestamptz, p_expires_at timestamptz, p_today date,
    OUT o_generation bigint, OUT o_reservation_id bigint, OUT o_free bigint
)
LANGUAGE plpgsql AS $function$
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
        UPDATE individual_credit_balances
        SET reserved_credits = reserved_credits + p_amount, updated_at = p_now
        WHERE user_id = p_user_id AND total_credits - used_credits - reserved_credits >= p_amount
        RETURNING NULL::bigint, total_credits - used_credits - reserved_credits
        INTO p_allocation_id, o_free;
    ELSE
        UPDATE user_credit_allocations AS a
        SET reserved_credits = a.reserved_credits + p_amount, cap_day = p_today, cap_day_spent = (CASE WHEN a.cap_day = p_today THEN a.cap_day_spent ELSE 0 END) + p_amount, updated_at = p_now
        WHERE
        a.org_id = p_org_id AND a.user_id = p_user_id AND a.is_active
        AND (a.expires_at IS NULL OR a.expires_at > p_now)
        AND a.allocated_credits - a.used_credits - a.reserved_credits >= p_amount
        AND (a.daily_cap_credits IS NULL OR (CASE WHEN a.cap_day = p_today THEN a.cap_day_spent ELSE 0 END) + p_amount <= a.daily_cap_credits)
        AND EXISTS (
        SELECT 1 FROM organization_members m
        WHERE m.org_id = a.org_id AND m.user_id = a.user_id AND m.status = 'active'
        )

        AND EXISTS (SELECT 1 FROM organizations o WHERE o.id = p_org_id AND o.is_active)
        RETURNING a.id, a.allocated_credits - a.used_credits - a.reserved_credits
        INTO p_allocation_id, o_free;
    END IF;
    IF NOT FOUND THEN
        o_free := NULL;
        RETURN;  -- refused: nothing changed (the ORM path says why)
    END IF;
    IF p_org_id IS NULL THEN
        INSERT INTO credit_reservations (
        org_id, user_id, allocation_id, request_id, amount, status, credits_charged, expires_at,
        created_at
        )
        SELECT p_org_id::varchar, p_user_id::bigint, p_allocation_id::bigint, p_request_id::varchar,
        p_amount::bigint, 'held', 0, p_expires_at::timestamptz, p_now::timestamptz
        WHERE NOT EXISTS (
        SELECT 1 FROM credit_usage_attribution c WHERE c.request_id = p_request_id::varchar AND c.org_id IS NULL AND c.user_id = p_user_id::bigint
        )
        ON CONFLICT (user_id, request_id) WHERE org_id IS NULL DO NOTHING
        RETURNING id
        INTO o_reservation_id;
    ELSE
        INSERT INTO credit_reservations (
        org_id, user_id, allocation_id, request_id, amount, status, credits_charged, expires_at,
        created_at
        )
        SELECT p_org_id::varchar, p_user_id::bigint, p_allocation_id::bigint, p_request_id::varchar,
        p_amount::bigint, 'held', 0, p_expires_at::timestamptz, p_now::timestamptz
        WHERE NOT EXISTS (
        SELECT 1 FROM credit_usage_attribution c WHERE c.request_id = p_request_id::varchar AND c.org_id = p_org_id::varchar
        )
        ON CONFLICT (org_id, request_id) WHERE org_id IS NOT NULL DO NOTHING
        RETURNING id
        INTO o_reservation_id;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger fast path not applied';  -- held or charged before: the hold above is rolled back
    END IF;
END
$function$
"""

LEDGER_SETTLE = r"""
CREATE OR REPLACE FUNCTION ledger_settle(
    p_reservation_id bigint, p_amount bigint, p_now timestamptz, p_today date,
    p_service_type varchar, p_service_name varchar, p_input_tokens bigint, p_output_tokens bigint,
    p_cached_tokens bigint, p_cache_write_tokens bigint, p_audio_input_tokens bigint, p_reasoning_tokens bigint, p_audio_output_tokens bigint, p_metadata jsonb,
    OUT o_attribution_id bigint, OUT o_org_id varchar, OUT o_user_id bigint,
    OUT o_allocation_id bigint, OUT o_held bigint, OUT o_request_id varchar,
    OUT o_allocated bigint, OUT o_used bigint, OUT o_free bigint
)
LANGUAGE plpgsql AS $function$
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
        UPDATE organization_credit_pools p
        SET used_credits = p.used_credits + p_amount, updated_at = p_now
        WHERE p.org_id = p_org_id AND p.used_credits + p_amount <= p.allocated_credits;
        IF NOT FOUND THEN
            RETURN;  -- the pool cannot take it: nothing changed
        END IF;
    END IF;
    -- The held amount counted in the day's spend if the hold was taken on the settling day.
    p_held_today := CASE WHEN (v_held_at AT TIME ZONE 'UTC')::date = p_today THEN p_held ELSE 0 END;
    IF p_org_id IS NULL THEN
        UPDATE individual_credit_balances
        SET used_credits = used_credits + p_amount, reserved_credits = reserved_credits - p_held,
        updated_at = p_now
        WHERE user_id = p_user_id AND total_credits - used_credits - reserved_credits + p_held >= p_amount AND reserved_credits >= p_held
        RETURNING NULL::bigint, total_credits, used_credits, total_credits - used_credits - reserved_credits
        INTO o_allocation_id, o_allocated, o_used, o_free;
    ELSE
        UPDATE user_credit_allocations AS a
        SET used_credits = used_credits + p_amount, reserved_credits = reserved_credits - p_held,
        cap_day = p_today,
        cap_day_spent = GREATEST((CASE WHEN a.cap_day = p_today THEN a.cap_day_spent ELSE 0 END) - p_held_today, 0) + p_amount,
        updated_at = p_now
        WHERE id = p_allocation_id AND allocated_credits - used_credits - reserved_credits + p_held >= p_amount AND reserved_credits >= p_held
        RETURNING id, allocated_credits, used_credits, allocated_credits - used_credits - reserved_credits
        INTO o_allocation_id, o_allocated, o_used, o_free;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger fast path not applied';
    END IF;
    IF o_allocation_id IS NOT NULL AND o_allocated > 0
       AND (o_used - p_amount) * 100 < o_allocated * 90
       AND o_allocated * 90 <= o_used * 100 THEN
        RAISE EXCEPTION 'ledger fast path not applied';  -- crosses the exhaustion threshold: the ORM path writes its audit event
    END IF;
    p_balance_after := o_free;
    p_metadata := p_metadata || jsonb_build_object('held_credits', p_held);
    IF p_org_id IS NULL THEN
        WITH charge AS (
        INSERT INTO credit_usage_attribution (
        org_id, user_id, allocation_id, service_type, service_name, input_tokens, output_tokens,
        cached_tokens, cache_write_tokens, audio_input_tokens, reasoning_tokens, audio_output_tokens,
        credits_used, balance_after, request_id, request_metadata, created_at
        ) VALUES (
        p_org_id, p_user_id, p_allocation_id, p_service_type, p_service_name,
        p_input_tokens, p_output_tokens, p_cached_tokens, p_cache_write_tokens,
        p_audio_input_tokens, p_reasoning_tokens, p_audio_output_tokens,
        p_amount, p_balance_after, p_request_id, p_metadata, p_now
        )
        ON CONFLICT (user_id, request_id) WHERE org_id IS NULL DO NOTHING RETURNING id)
        UPDATE credit_reservations r
        SET status = 'settled', credits_charged = p_amount, credits_requested = p_amount,
        attribution_id = charge.id, finished_at = p_now
        FROM charge
        WHERE r.id = p_reservation_id AND r.status = 'held'
        RETURNING charge.id
        INTO o_attribution_id;
    ELSE
        WITH charge AS (
        INSERT INTO credit_usage_attribution (
        org_id, user_id, allocation_id, service_type, service_name, input_tokens, output_tokens,
        cached_tokens, cache_write_tokens, audio_input_tokens, reasoning_tokens, audio_output_tokens,
        credits_used, balance_after, request_id, request_metadata, created_at
        ) VALUES (
        p_org_id, p_user_id, p_allocation_id, p_service_type, p_service_name,
        p_input_tokens, p_output_tokens, p_cached_tokens, p_cache_write_tokens,
        p_audio_input_tokens, p_reasoning_tokens, p_audio_output_tokens,
        p_amount, p_balance_after, p_request_id, p_metadata, p_now
        )
        ON CONFLICT (org_id, request_id) WHERE org_id IS NOT NULL DO NOTHING RETURNING id)
        UPDATE credit_reservations r
        SET status = 'settled', credits_charged = p_amount, credits_requested = p_amount,
        attribution_id = charge.id, finished_at = p_now
        FROM charge
        WHERE r.id = p_reservation_id AND r.status = 'held'
        RETURNING charge.id
        INTO o_attribution_id;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger fast path not applied';  -- charged under this request id before, or settled meanwhile
    END IF;
    o_org_id := p_org_id;
    o_user_id := p_user_id;
    o_held := p_held;
    o_request_id := p_request_id;
END
$function$
"""

DROP = [
    "DROP FUNCTION IF EXISTS ledger_hold(bigint, varchar, bigint, bigint, varchar, timestamptz, timestamptz, date)",
    "DROP FUNCTION IF EXISTS ledger_settle(bigint, bigint, timestamptz, date, varchar, varchar, bigint, bigint, "
    "bigint, bigint, bigint, bigint, bigint, jsonb)",
]


class Migration(migrations.Migration):
    dependencies = [("billing", "0024_individual_credit_purchases_and_entries")]

    operations = [
        migrations.RunSQL(sql=[LEDGER_HOLD, LEDGER_SETTLE], reverse_sql=DROP),
    ]
