"""Usage that already happened, appended to an organization's ledger in bulk: the demo's month
of history (``seed_demo``), or an import from another system.

Each charge becomes an attribution row dated when it happened, and the members' allocations and
the pool are raised by the same amounts in the same transaction, so the ledger invariants hold
(an allocation's ``used`` = the sum of its rows; the pool's ``used`` = the sum of its
allocations'). Locks: the pool, then the allocations in ascending id (``billing.ledger.locks``).
A charge whose ``request_id`` the org already has is skipped, so a replay charges nothing. A
member without an active allocation, or whose free credits would not cover their charges, fails
the whole batch: nothing is written.
"""

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from billing.audit import record_audit_event
from billing.errors import InsufficientCredits, NoActiveAllocation
from billing.ledger.locks import lock_allocations, lock_pool
from billing.models import CreditUsageAttribution, ServiceType, UserCreditAllocation
from orgbilling.money import validate_millicredits

_INSERT = (
    f"INSERT INTO {CreditUsageAttribution._meta.db_table} (org_id, user_id, allocation_id, service_type, "
    "service_name, input_tokens, output_tokens, credits_used, balance_after, request_id, request_metadata, "
    "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
)


@dataclass(frozen=True)
class PastCharge:
    user_id: int  # the user's primary key
    amount: int  # millicredits
    request_id: str
    at: datetime
    service_name: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


def record_past_usage(*, org_id: str, charges: Sequence[PastCharge], actor_label: str = "") -> int:
    """Append ``charges`` to the org's ledger; return how many were new (the rest were there)."""
    for charge in charges:
        validate_millicredits(charge.amount)
    with transaction.atomic():
        pool = lock_pool(org_id)
        by_user = {
            a.user_id: a.pk
            for a in UserCreditAllocation.objects.filter(
                org_id=org_id, user_id__in={c.user_id for c in charges}, is_active=True
            )
        }
        missing = {c.user_id for c in charges} - set(by_user)
        if missing:
            raise NoActiveAllocation(details={"org_id": org_id, "user_ids": sorted(missing)})
        allocations = lock_allocations(by_user.values())
        known = set(
            CreditUsageAttribution.objects.filter(
                org_id=org_id, request_id__in=[c.request_id for c in charges]
            ).values_list("request_id", flat=True)
        )
        new = sorted((c for c in charges if c.request_id not in known), key=lambda c: c.at)
        totals: dict[int, int] = defaultdict(int)
        for charge in new:
            totals[by_user[charge.user_id]] += charge.amount
        for allocation_id, total in totals.items():
            allocation = allocations[allocation_id]
            if total > allocation.free_credits:
                raise InsufficientCredits(
                    details={"org_id": org_id, "allocation_id": allocation_id, "needed": total}
                )
        rows = _attribution_rows(org_id, new, allocations, by_user, totals)
        with connection.cursor() as cursor:
            cursor.executemany(_INSERT, rows)
        for allocation_id, total in totals.items():
            allocation = allocations[allocation_id]
            allocation.used_credits += total
            allocation.save(update_fields=["used_credits", "updated_at"])
        pool.used_credits += sum(totals.values())
        pool.save(update_fields=["used_credits", "updated_at"])
        if new:
            record_audit_event(
                action="usage.past_recorded",
                actor_label=actor_label,
                org_id=org_id,
                target_type="pool",
                target_id=org_id,
                metadata={"charges": len(new), "credits_used": sum(totals.values())},
            )
    return len(new)


def _attribution_rows(
    org_id: str,
    new: Sequence[PastCharge],
    allocations: dict[int, UserCreditAllocation],
    by_user: dict[int, int],
    totals: dict[int, int],
) -> list[tuple[Any, ...]]:
    """One attribution row per charge, in time order, each with the balance after it."""
    rows: list[tuple[Any, ...]] = []
    used = {allocation_id: allocations[allocation_id].used_credits for allocation_id in totals}
    for charge in new:
        allocation = allocations[by_user[charge.user_id]]
        used[allocation.pk] += charge.amount
        balance_after = allocation.allocated_credits - used[allocation.pk] - allocation.reserved_credits
        rows.append(
            (
                org_id,
                charge.user_id,
                allocation.pk,
                ServiceType.LLM,
                charge.service_name,
                charge.input_tokens,
                charge.output_tokens,
                charge.amount,
                balance_after,
                charge.request_id,
                json.dumps(charge.metadata),
                charge.at,
            )
        )
    return rows
