"""Usage alerts (50/80/90/100 % of an allocation or a pool) and the ledger drift alert.

Usage alerts. A target is an active allocation (used / allocated) or a pool (used / total) of
an active organization. Each pass compares every target's usage with the ``UsageAlert`` rows
of the current period (the UTC month): a threshold reached with no firing row fires (row
created or re-armed, ``usage_alert.triggered`` audit event), a firing threshold no longer
reached (credits were added) resolves (``usage_alert.resolved``). Each target changes in its
own transaction, serialized with concurrent passes by an advisory lock on the target, and its
admins get one e-mail per pass that changed something. The ``allocation.exhausted`` event the
charging path records at 90 % is separate: an immediate ledger marker without e-mail or
period (docs/decisions.md).

Drift alert. ``alert_on_ledger_drift`` runs the reconciliation; any drift is logged at ERROR,
recorded as a ``ledger.drift_detected`` audit event and mailed to operations.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from billing.audit import record_audit_event
from billing.models import OrganizationCreditPool, UsageAlert, UserCreditAllocation
from billing.money import millicredits_to_credits
from billing.selectors.reconciliation import Drift, find_all_drifts
from billing.services.notifications import ops_recipients, org_admin_recipients, queue_email

logger = logging.getLogger(__name__)

USAGE_ALERT_THRESHOLDS: tuple[int, ...] = (50, 80, 90, 100)
ALERT_ACTOR = "task:usage_alerts"
DRIFT_ACTOR = "task:reconcile_credits"
# At most this many drifts are copied into the audit event and the e-mail (all are logged).
DRIFT_DETAILS_LIMIT = 100

Scope = UsageAlert.Scope
TargetKey = tuple[str, str, int | None]  # (scope, org_id, allocation_id)


def period_start(now: datetime) -> date:
    """The first day (UTC) of the month ``now`` falls in: the alerts' period."""
    return now.astimezone(UTC).date().replace(day=1)


@dataclass(frozen=True)
class UsageLevel:
    """A target's usage when it was read."""

    scope: str
    org_id: str
    allocation_id: int | None
    username: str | None
    used: int
    capacity: int

    @property
    def key(self) -> TargetKey:
        return (self.scope, self.org_id, self.allocation_id)

    @property
    def percent(self) -> int:
        return self.used * 100 // self.capacity if self.capacity else 0

    def reached(self, threshold: int) -> bool:
        return self.capacity > 0 and self.used * 100 >= threshold * self.capacity

    def reached_thresholds(self) -> set[int]:
        return {t for t in USAGE_ALERT_THRESHOLDS if self.reached(t)}

    def describe(self) -> str:
        if self.scope == Scope.POOL:
            return f"the credit pool of {self.org_id}"
        return f"the allocation of {self.username} in {self.org_id}"


@dataclass(frozen=True)
class AlertChange:
    kind: str  # "triggered" | "resolved"
    scope: str
    org_id: str
    allocation_id: int | None
    threshold: int
    alert_id: int


@dataclass(frozen=True)
class AlertPass:
    changes: list[AlertChange]
    targets_checked: int

    def count(self, kind: str) -> int:
        return sum(1 for change in self.changes if change.kind == kind)


def _allocation_levels(queryset: Iterable[UserCreditAllocation]) -> list[UsageLevel]:
    return [
        UsageLevel(Scope.ALLOCATION, a.org_id, a.pk, a.user.username, a.used_credits, a.allocated_credits)
        for a in queryset
    ]


def _pool_levels(queryset: Iterable[OrganizationCreditPool]) -> list[UsageLevel]:
    return [UsageLevel(Scope.POOL, p.org_id, None, None, p.used_credits, p.total_credits) for p in queryset]


def _active_allocations() -> QuerySet[UserCreditAllocation]:
    return UserCreditAllocation.objects.filter(
        is_active=True, allocated_credits__gt=0, org__is_active=True
    ).select_related("user")


def _active_pools() -> QuerySet[OrganizationCreditPool]:
    return OrganizationCreditPool.objects.filter(total_credits__gt=0, org__is_active=True)


def _levels_to_check(period: date) -> tuple[list[UsageLevel], dict[TargetKey, set[int]]]:
    """Targets at or above the lowest threshold, and targets with alerts still firing."""
    lowest = min(USAGE_ALERT_THRESHOLDS)
    firing: dict[TargetKey, set[int]] = defaultdict(set)
    for scope, org_id, allocation_id, threshold in UsageAlert.objects.filter(
        period_start=period, status=UsageAlert.Status.FIRING
    ).values_list("scope", "org_id", "allocation_id", "threshold"):
        firing[(scope, org_id, allocation_id)].add(threshold)
    firing_allocations = [key[2] for key in firing if key[0] == Scope.ALLOCATION and key[2] is not None]
    firing_pools = [key[1] for key in firing if key[0] == Scope.POOL]

    allocations = _active_allocations().alias(
        used_x100=F("used_credits") * 100, lowest_share=F("allocated_credits") * lowest
    )
    pools = _active_pools().alias(used_x100=F("used_credits") * 100, lowest_share=F("total_credits") * lowest)
    levels = [
        *_allocation_levels(allocations.filter(used_x100__gte=F("lowest_share"))),
        *_allocation_levels(allocations.filter(used_x100__lt=F("lowest_share"), pk__in=firing_allocations)),
        *_pool_levels(pools.filter(used_x100__gte=F("lowest_share"))),
        *_pool_levels(pools.filter(used_x100__lt=F("lowest_share"), org_id__in=firing_pools)),
    ]
    return levels, firing


def _reread(level: UsageLevel) -> UsageLevel | None:
    """The target's usage now (inside the target's transaction); None if it is no longer checked."""
    if level.allocation_id is None:
        found = _pool_levels(_active_pools().filter(org_id=level.org_id))
    else:
        found = _allocation_levels(_active_allocations().filter(pk=level.allocation_id))
    return found[0] if found else None


def _lock_target(level: UsageLevel) -> None:
    key = f"usage_alert:{level.scope}:{level.org_id}:{level.allocation_id or ''}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def _audit(kind: str, alert: UsageAlert, level: UsageLevel) -> None:
    record_audit_event(
        action=f"usage_alert.{kind}",
        actor_label=ALERT_ACTOR,
        org_id=level.org_id,
        target_type="allocation" if level.scope == Scope.ALLOCATION else "credit_pool",
        target_id=level.allocation_id or level.org_id,
        metadata={
            "alert_id": alert.pk,
            "scope": level.scope,
            "threshold": alert.threshold,
            "percent_used": level.percent,
            "used": level.used,
            "capacity": level.capacity,
            "period": f"{alert.period_start:%Y-%m}",
            "times_fired": alert.times_fired,
            **({"user_id": level.username} if level.username else {}),
        },
    )


def _apply(level: UsageLevel, period: date, now: datetime) -> list[AlertChange]:
    """Bring one target's alerts of ``period`` in line with its usage; one transaction."""
    changes: list[AlertChange] = []
    with transaction.atomic():
        _lock_target(level)
        current = _reread(level)
        if current is None:
            return changes
        rows = UsageAlert.objects.select_for_update().filter(scope=current.scope, period_start=period)
        rows = (
            rows.filter(allocation_id=current.allocation_id)
            if current.scope == Scope.ALLOCATION
            else rows.filter(org_id=current.org_id)
        )
        by_threshold = {row.threshold: row for row in rows}
        for threshold in USAGE_ALERT_THRESHOLDS:
            alert = by_threshold.get(threshold)
            if current.reached(threshold):
                if alert is None:
                    alert = UsageAlert.objects.create(
                        scope=current.scope,
                        org_id=current.org_id,
                        allocation_id=current.allocation_id,
                        threshold=threshold,
                        period_start=period,
                        used_credits=current.used,
                        capacity_credits=current.capacity,
                        first_fired_at=now,
                        last_fired_at=now,
                    )
                elif alert.status == UsageAlert.Status.RESOLVED:
                    # Crossed again after credits were added: a new crossing, told again.
                    alert.status = UsageAlert.Status.FIRING
                    alert.times_fired += 1
                    alert.last_fired_at = now
                    alert.resolved_at = None
                    alert.used_credits, alert.capacity_credits = current.used, current.capacity
                    alert.save()
                else:
                    continue
                kind = "triggered"
            elif alert is not None and alert.status == UsageAlert.Status.FIRING:
                alert.status = UsageAlert.Status.RESOLVED
                alert.resolved_at = now
                alert.used_credits, alert.capacity_credits = current.used, current.capacity
                alert.save()
                kind = "resolved"
            else:
                continue
            _audit(kind, alert, current)
            changes.append(
                AlertChange(kind, current.scope, current.org_id, current.allocation_id, threshold, alert.pk)
            )
        if changes:
            _notify_org(current, changes)
    return changes


def _notify_org(level: UsageLevel, changes: list[AlertChange]) -> None:
    triggered = [c.threshold for c in changes if c.kind == "triggered"]
    resolved = [c.threshold for c in changes if c.kind == "resolved"]
    used = millicredits_to_credits(level.used)
    capacity = millicredits_to_credits(level.capacity)
    what = level.describe()
    if triggered:
        subject = f"{level.org_id}: {what} has used {max(triggered)}% of its credits"
        lines = [
            f"{what[0].upper()}{what[1:]} has used {used} of {capacity} credits ({level.percent}%).",
            f"Thresholds reached: {', '.join(f'{t}%' for t in sorted(triggered))}.",
        ]
    else:
        subject = f"{level.org_id}: {what} is back below {min(resolved)}% used"
        lines = [
            f"Credits were added: {what} has used {used} of {capacity} credits ({level.percent}%).",
            f"Resolved: {', '.join(f'{t}%' for t in sorted(resolved))}.",
        ]
    if triggered and resolved:
        lines.append(f"Resolved: {', '.join(f'{t}%' for t in sorted(resolved))}.")
    lines += [
        "",
        "Add credits to the pool or raise the allocation to keep requests from being refused.",
        "You receive this because you administer this organization in orgbilling.",
    ]
    queue_email(subject=subject, body="\n".join(lines), recipients=org_admin_recipients(level.org_id))


def evaluate_usage_alerts(*, now: datetime | None = None) -> AlertPass:
    """Fire and resolve usage alerts for every allocation and pool; see the module docstring."""
    now = now or timezone.now()
    period = period_start(now)
    levels, firing = _levels_to_check(period)
    changes: list[AlertChange] = []
    for level in levels:
        if level.reached_thresholds() == firing.get(level.key, set()):
            continue  # nothing to fire or resolve: no transaction needed
        changes.extend(_apply(level, period, now))
    return AlertPass(changes=changes, targets_checked=len(levels))


def alert_on_ledger_drift(*, org_id: str | None = None) -> list[Drift]:
    """Reconcile the ledger; on any drift log at ERROR, audit and e-mail operations."""
    drifts = find_all_drifts(org_id)
    if not drifts:
        logger.info("Ledger reconciled: no drift")
        return drifts
    for drift in drifts:
        logger.error("Ledger drift: %s", drift)
    shown = drifts[:DRIFT_DETAILS_LIMIT]
    with transaction.atomic():
        record_audit_event(
            action="ledger.drift_detected",
            actor_label=DRIFT_ACTOR,
            org_id=None,
            target_type="ledger",
            target_id=org_id or "all",
            metadata={
                "count": len(drifts),
                "drifts": [asdict(drift) for drift in shown],
                "truncated": len(drifts) > len(shown),
                "orgs": sorted({d.org_id for d in drifts if d.org_id}),
            },
        )
        body = [
            f"The ledger reconciliation found {len(drifts)} drift(s). A drift is a bug: investigate,",
            "do not adjust balances by hand. Run `manage.py reconcile_credits` to list them again.",
            "",
            *(str(drift) for drift in shown),
        ]
        if len(drifts) > len(shown):
            body.append(f"… and {len(drifts) - len(shown)} more (see the logs).")
        if not queue_email(
            subject=f"Ledger drift: {len(drifts)} invariant violation(s)",
            body="\n".join(body),
            recipients=ops_recipients(),
        ):
            logger.error(
                "Ledger drift found but no ops address is configured (DJANGO_ADMINS, OPS_ALERT_EMAILS)"
            )
    return drifts
