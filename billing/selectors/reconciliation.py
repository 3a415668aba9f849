"""Cross-row invariants of the ledger (DESIGN.md §4), checked in SQL over batches of orgs.

A drift is a bug to investigate, never something to "fix up": these functions only report.
Each batch runs under the reports' statement timeout (``orgbilling.db.report_timeout``), so the
command, the Celery task and any web caller all get it.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from django.db import connection

from billing.models import OrganizationCreditPool
from orgbilling.db import report_timeout

BATCH_SIZE = 500


@dataclass(frozen=True)
class Drift:
    check: str
    org_id: str | None
    target: str
    expected: int
    actual: int

    def __str__(self) -> str:
        where = f"org {self.org_id} " if self.org_id else ""
        return f"[{self.check}] {where}{self.target}: expected {self.expected}, found {self.actual}"


# Each query takes the batch of org ids twice at most and returns
# (org_id, target, expected, actual) rows for every violation.
_ORG_CHECKS: dict[str, str] = {
    # The pool's allocated credits are its allocations outside departments plus every
    # department's budget (a department's allocations are carved from its budget).
    "pool_allocated_equals_sum_of_allocations": """
        SELECT org_id, 'pool', expected, actual FROM (
            SELECT p.org_id, p.allocated_credits AS actual,
                   COALESCE((SELECT SUM(a.allocated_credits) FROM user_credit_allocations a
                             WHERE a.org_id = p.org_id AND a.department_id IS NULL), 0)
                 + COALESCE((SELECT SUM(d.budget_credits) FROM departments d
                             WHERE d.org_id = p.org_id), 0) AS expected
            FROM organization_credit_pools p
            WHERE p.org_id = ANY(%(orgs)s)
        ) t
        WHERE expected <> actual
    """,
    "department_allocated_equals_sum_of_allocations": """
        SELECT d.org_id, 'department #' || d.id || ' (' || d.name || ')',
               COALESCE(SUM(a.allocated_credits), 0), d.allocated_credits
        FROM departments d
        LEFT JOIN user_credit_allocations a ON a.department_id = d.id
        WHERE d.org_id = ANY(%(orgs)s)
        GROUP BY d.id, d.org_id, d.name, d.allocated_credits
        HAVING d.allocated_credits <> COALESCE(SUM(a.allocated_credits), 0)
    """,
    "department_within_bounds": """
        SELECT org_id, 'department #' || id || ' (' || name || ')', budget_credits, allocated_credits
        FROM departments
        WHERE org_id = ANY(%(orgs)s)
          AND NOT (0 <= allocated_credits AND allocated_credits <= budget_credits
                   AND (deleted_at IS NULL OR allocated_credits = budget_credits))
    """,
    "allocation_matches_its_department": """
        SELECT a.org_id, 'allocation #' || a.id || ' (department #' || d.id || ')', 0, 1
        FROM user_credit_allocations a
        JOIN departments d ON d.id = a.department_id
        WHERE a.org_id = ANY(%(orgs)s)
          AND (d.org_id <> a.org_id OR (a.is_active AND d.deleted_at IS NOT NULL))
    """,
    "pool_used_equals_sum_of_allocations": """
        SELECT p.org_id, 'pool', COALESCE(SUM(a.used_credits), 0), p.used_credits
        FROM organization_credit_pools p
        LEFT JOIN user_credit_allocations a ON a.org_id = p.org_id
        WHERE p.org_id = ANY(%(orgs)s)
        GROUP BY p.org_id, p.used_credits
        HAVING p.used_credits <> COALESCE(SUM(a.used_credits), 0)
    """,
    "pool_within_bounds": """
        SELECT org_id, 'pool', total_credits, allocated_credits
        FROM organization_credit_pools
        WHERE org_id = ANY(%(orgs)s)
          AND NOT (0 <= used_credits AND used_credits <= allocated_credits
                   AND allocated_credits <= total_credits)
    """,
    "allocation_used_equals_sum_of_attribution": """
        SELECT a.org_id, 'allocation #' || a.id || ' (user ' || a.user_id || ')',
               COALESCE(u.total, 0), a.used_credits
        FROM user_credit_allocations a
        LEFT JOIN (
            SELECT allocation_id, SUM(credits_used) AS total
            FROM credit_usage_attribution
            WHERE org_id = ANY(%(orgs)s)
            GROUP BY allocation_id
        ) u ON u.allocation_id = a.id
        WHERE a.org_id = ANY(%(orgs)s) AND a.used_credits <> COALESCE(u.total, 0)
    """,
    "allocation_reserved_equals_held_reservations": """
        SELECT a.org_id, 'allocation #' || a.id || ' (user ' || a.user_id || ')',
               COALESCE(r.total, 0), a.reserved_credits
        FROM user_credit_allocations a
        LEFT JOIN (
            SELECT allocation_id, SUM(amount) AS total
            FROM credit_reservations
            WHERE org_id = ANY(%(orgs)s) AND status = 'held'
            GROUP BY allocation_id
        ) r ON r.allocation_id = a.id
        WHERE a.org_id = ANY(%(orgs)s) AND a.reserved_credits <> COALESCE(r.total, 0)
    """,
    "allocation_within_bounds": """
        SELECT org_id, 'allocation #' || id, allocated_credits, used_credits + reserved_credits
        FROM user_credit_allocations
        WHERE org_id = ANY(%(orgs)s)
          AND NOT (used_credits >= 0 AND reserved_credits >= 0
                   AND used_credits + reserved_credits <= allocated_credits)
    """,
    "pool_total_equals_credits_added": """
        SELECT p.org_id, 'pool', COALESCE(SUM(h.signed), 0), p.total_credits
        FROM organization_credit_pools p
        LEFT JOIN (
            -- credits added, less those a refund took back (a refund left for review has none)
            -- and those an expired grant took out
            SELECT org_id, CASE WHEN event_type IN ('refund', 'credit_expiry') THEN -credits
                                ELSE credits END AS signed
            FROM org_billing_history
            WHERE event_type IN ('credit_purchase', 'credit_grant', 'refund', 'credit_expiry')
              AND credits IS NOT NULL
        ) h ON h.org_id = p.org_id
        WHERE p.org_id = ANY(%(orgs)s)
        GROUP BY p.org_id, p.total_credits
        HAVING p.total_credits <> COALESCE(SUM(h.signed), 0)
    """,
    # Every credit in the pool entered as a grant: the total is what the grants still count for.
    # (A legacy grant, made by migration 0023, carries the pool's credits from before grants.)
    "pool_total_equals_sum_of_grants": """
        SELECT p.org_id, 'pool', COALESCE(SUM(g.credits - g.forfeited_credits - g.refunded_credits), 0),
               p.total_credits
        FROM organization_credit_pools p
        LEFT JOIN credit_grants g ON g.org_id = p.org_id
        WHERE p.org_id = ANY(%(orgs)s)
        GROUP BY p.org_id, p.total_credits
        HAVING p.total_credits <> COALESCE(SUM(g.credits - g.forfeited_credits - g.refunded_credits), 0)
    """,
    # Usage attributed to grants at their last checkpoint never exceeds what the pool has used
    # (the rest of the pool's usage is spread when read).
    "grants_consumed_within_pool_used": """
        SELECT p.org_id, 'pool', p.used_credits, SUM(g.consumed_credits)
        FROM organization_credit_pools p
        JOIN credit_grants g ON g.org_id = p.org_id
        WHERE p.org_id = ANY(%(orgs)s)
        GROUP BY p.org_id, p.used_credits
        HAVING SUM(g.consumed_credits) > p.used_credits
    """,
    # A grant's credits are the ones its ledger transaction put in; what expired is what its
    # credit_expiry rows took out.
    "grant_matches_its_history": """
        SELECT g.org_id, 'grant #' || g.id, COALESCE(h.credits, -1), g.credits
        FROM credit_grants g
        LEFT JOIN org_billing_history h ON h.id = g.history_id
        WHERE g.org_id = ANY(%(orgs)s) AND g.source <> 'legacy'
          AND (h.id IS NULL OR h.credits IS DISTINCT FROM g.credits OR h.org_id <> g.org_id)
    """,
    "grant_forfeited_equals_its_expiry_rows": """
        SELECT g.org_id, 'grant #' || g.id, COALESCE(SUM(h.credits), 0), g.forfeited_credits
        FROM credit_grants g
        LEFT JOIN org_billing_history h
               ON h.event_type = 'credit_expiry' AND h.org_id = g.org_id
              AND h.external_id LIKE 'grant-' || g.id || '-expiry-%%'
        WHERE g.org_id = ANY(%(orgs)s)
        GROUP BY g.id, g.org_id, g.forfeited_credits
        HAVING g.forfeited_credits <> COALESCE(SUM(h.credits), 0)
    """,
    "settled_reservation_matches_its_charge": """
        SELECT r.org_id, 'reservation #' || r.id, COALESCE(c.credits_used, -1), r.credits_charged
        FROM credit_reservations r
        LEFT JOIN credit_usage_attribution c ON c.id = r.attribution_id
        WHERE r.org_id = ANY(%(orgs)s) AND r.status = 'settled'
          AND (c.id IS NULL OR c.credits_used <> r.credits_charged)
    """,
    "reservation_matches_its_allocation": """
        SELECT r.org_id, 'reservation #' || r.id || ' (allocation #' || a.id || ')', 0, 1
        FROM credit_reservations r
        JOIN user_credit_allocations a ON a.id = r.allocation_id
        WHERE r.org_id = ANY(%(orgs)s) AND (a.org_id <> r.org_id OR a.user_id <> r.user_id)
    """,
    "attribution_matches_its_allocation": """
        SELECT c.org_id, 'attribution #' || c.id || ' (allocation #' || a.id || ')', 0, 1
        FROM credit_usage_attribution c
        JOIN user_credit_allocations a ON a.id = c.allocation_id
        WHERE c.org_id = ANY(%(orgs)s) AND (a.org_id <> c.org_id OR a.user_id <> c.user_id)
    """,
}

_INDIVIDUAL_CHECKS: dict[str, str] = {
    "individual_used_equals_sum_of_attribution": """
        SELECT NULL, 'individual balance of user ' || b.user_id, COALESCE(u.total, 0), b.used_credits
        FROM individual_credit_balances b
        LEFT JOIN (
            SELECT user_id, SUM(credits_used) AS total
            FROM credit_usage_attribution WHERE org_id IS NULL GROUP BY user_id
        ) u ON u.user_id = b.user_id
        WHERE b.used_credits <> COALESCE(u.total, 0)
    """,
    "individual_reserved_equals_held_reservations": """
        SELECT NULL, 'individual balance of user ' || b.user_id, COALESCE(r.total, 0), b.reserved_credits
        FROM individual_credit_balances b
        LEFT JOIN (
            SELECT user_id, SUM(amount) AS total
            FROM credit_reservations WHERE org_id IS NULL AND status = 'held' GROUP BY user_id
        ) r ON r.user_id = b.user_id
        WHERE b.reserved_credits <> COALESCE(r.total, 0)
    """,
    # Every change to the total is an appended entry (an ``opening`` one, made by migration 0028,
    # carries a total from before the ledger).
    "individual_total_equals_sum_of_entries": """
        SELECT NULL, 'individual balance of user ' || b.user_id, COALESCE(e.total, 0), b.total_credits
        FROM individual_credit_balances b
        LEFT JOIN (
            SELECT user_id, SUM(credits) AS total FROM individual_credit_entries GROUP BY user_id
        ) e ON e.user_id = b.user_id
        WHERE b.total_credits <> COALESCE(e.total, 0)
    """,
    "individual_within_bounds": """
        SELECT NULL, 'individual balance of user ' || user_id, total_credits, used_credits + reserved_credits
        FROM individual_credit_balances
        WHERE NOT (used_credits >= 0 AND reserved_credits >= 0
                   AND used_credits + reserved_credits <= total_credits)
    """,
    "individual_usage_without_balance": """
        SELECT NULL, 'user ' || c.user_id || ' has individual usage but no balance', 0, SUM(c.credits_used)
        FROM credit_usage_attribution c
        LEFT JOIN individual_credit_balances b ON b.user_id = c.user_id
        WHERE c.org_id IS NULL AND b.user_id IS NULL
        GROUP BY c.user_id
    """,
}


def org_ids_to_check(org_id: str | None = None) -> list[str]:
    pools = OrganizationCreditPool.objects.order_by("org_id")
    if org_id is not None:
        pools = pools.filter(org_id=org_id)
    return list(pools.values_list("org_id", flat=True))


def _run(check: str, sql: str, params: dict[str, list[str]]) -> list[Drift]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            Drift(check=check, org_id=org, target=target, expected=int(expected), actual=int(actual))
            for org, target, expected, actual in cursor.fetchall()
        ]


def find_org_drifts(org_ids: Sequence[str]) -> list[Drift]:
    """Every cross-row invariant violated by the given organizations."""
    drifts: list[Drift] = []
    with report_timeout():
        for check, sql in _ORG_CHECKS.items():
            drifts.extend(_run(check, sql, {"orgs": list(org_ids)}))
    return drifts


def find_individual_drifts() -> list[Drift]:
    drifts: list[Drift] = []
    with report_timeout():
        for check, sql in _INDIVIDUAL_CHECKS.items():
            drifts.extend(_run(check, sql, {}))
    return drifts


def batched(items: Sequence[str], size: int = BATCH_SIZE) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def find_all_drifts(org_id: str | None = None) -> list[Drift]:
    """Every drift in one org, or everywhere (individual balances included)."""
    drifts: list[Drift] = []
    for batch in batched(org_ids_to_check(org_id)):
        drifts.extend(find_org_drifts(batch))
    if org_id is None:
        drifts.extend(find_individual_drifts())
    return drifts
