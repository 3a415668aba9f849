"""The one rule for "may this member spend ``amount`` now?", in Python and as SQL.

``spend_refusal`` answers it through the ORM (the slow paths, and the diagnosis after a fast
path changed nothing); ``SPENDABLE_ALLOCATION`` and ``ACTIVE_ORG`` are the same rule as SQL
fragments that the fast paths (``billing.ledger.sql``, ``billing.ledger.holds``) compose.
``tests/billing/test_eligibility.py`` checks that the two agree on every refusal.

Precedence of the refusals (callers and tests rely on it): organization missing → organization
inactive → not an active member → no active allocation → allocation expired → insufficient
credits → daily cap reached. The step functions below are the parts; ``context`` uses them in
its own order (it picks among the user's memberships, so the membership is judged first).
"""

from datetime import UTC, date, datetime

from django.utils import timezone

from billing.errors import (
    AllocationExpired,
    DailyCapReached,
    InsufficientCredits,
    NoActiveAllocation,
    NotAMember,
    OrganizationInactive,
    OrganizationNotFound,
)
from billing.models import IndividualCreditBalance, OrganizationCreditPool, UserCreditAllocation
from organizations.models import Organization, OrganizationMember, User
from orgbilling.errors import ApplicationError

# The organization ``%(org_id)s`` exists and is active.
ACTIVE_ORG = "EXISTS (SELECT 1 FROM organizations o WHERE o.id = %(org_id)s AND o.is_active)"


def day_spent_sql(alias: str = "a") -> str:
    """What the allocation (``alias``) charged or holds on the UTC day ``%(today)s``."""
    return f"(CASE WHEN {alias}.cap_day = %(today)s THEN {alias}.cap_day_spent ELSE 0 END)"


# Which allocation may spend ``amount`` for ``user_id`` in ``org_id`` (the table aliased ``a``)
# on the UTC day ``today``: the active, unexpired allocation of an active member, with that much
# free, and within its daily cap if it has one.
SPENDABLE_ALLOCATION = f"""
    a.org_id = %(org_id)s AND a.user_id = %(user_id)s AND a.is_active
    AND (a.expires_at IS NULL OR a.expires_at > %(now)s)
    AND a.allocated_credits - a.used_credits - a.reserved_credits >= %(amount)s
    AND (a.daily_cap_credits IS NULL OR {day_spent_sql()} + %(amount)s <= a.daily_cap_credits)
    AND EXISTS (
        SELECT 1 FROM organization_members m
         WHERE m.org_id = a.org_id AND m.user_id = a.user_id AND m.status = 'active'
    )
"""

# Any user's own balance: nothing but its free credits decides.
SPENDABLE_INDIVIDUAL = "total_credits - used_credits - reserved_credits >= %(amount)s"


def org_refusal(org_id: str, is_active: bool | None) -> ApplicationError | None:
    """``is_active`` is None when the organization does not exist."""
    if is_active is None:
        return OrganizationNotFound(details={"org_id": org_id})
    if not is_active:
        return OrganizationInactive(details={"org_id": org_id})
    return None


def require_active_org(org_id: str) -> None:
    """Raise unless the organization exists and is active (one query, no lock)."""
    is_active = Organization.objects.filter(pk=org_id).values_list("is_active", flat=True).first()
    refusal = org_refusal(org_id, is_active)
    if refusal is not None:
        raise refusal


def member_refusal(org_id: str, user_label: str | int, status: str | None) -> ApplicationError | None:
    """``status`` is the membership's, None when there is none; ``user_label`` goes in the details."""
    if status != OrganizationMember.Status.ACTIVE:
        return NotAMember(details={"org_id": org_id, "user_id": user_label})
    return None


def require_active_member(org_id: str, user: User) -> None:
    if not OrganizationMember.objects.filter(
        org_id=org_id, user=user, status=OrganizationMember.Status.ACTIVE
    ).exists():
        raise NotAMember(details={"org_id": org_id, "user_id": user.username})


def expiry_refusal(allocation: UserCreditAllocation, now: datetime | None = None) -> ApplicationError | None:
    if allocation.expires_at is not None and allocation.expires_at <= (now or timezone.now()):
        return AllocationExpired(
            details={"org_id": allocation.org_id, "expires_at": allocation.expires_at.isoformat()}
        )
    return None


def funds_refusal(free: int, amount: int) -> ApplicationError | None:
    if free < amount:
        return InsufficientCredits(details={"required": amount, "available": free})
    return None


def utc_day(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def day_spent(allocation: UserCreditAllocation, today: date) -> int:
    """What the allocation charged or holds on ``today`` (the ORM twin of ``day_spent_sql``)."""
    return allocation.cap_day_spent if allocation.cap_day == today else 0


def daily_cap_refusal(
    allocation: UserCreditAllocation, amount: int, now: datetime | None = None
) -> ApplicationError | None:
    cap = allocation.daily_cap_credits
    today = utc_day(now)
    if cap is not None and day_spent(allocation, today) + amount > cap:
        return DailyCapReached(
            details={
                "daily_cap": cap,
                "spent_today": day_spent(allocation, today),
                "required": amount,
                "day": today.isoformat(),
            }
        )
    return None


def spend_refusal(*, org_id: str | None, user: User, amount: int) -> ApplicationError | None:
    """Why ``user`` may not spend ``amount`` millicredits in ``org_id`` (None: their individual
    credits) right now, or None when they may. Reads without locking: a diagnosis or a hint."""
    if org_id is None:
        balance = IndividualCreditBalance.objects.filter(user=user).first()
        return funds_refusal(balance.free_credits if balance else 0, amount)
    org_active = Organization.objects.filter(pk=org_id).values_list("is_active", flat=True).first()
    if org_active is not None and not OrganizationCreditPool.objects.filter(org_id=org_id).exists():
        org_active = None  # an organization without a pool has never been set up for billing
    refusal = org_refusal(org_id, org_active)
    if refusal is not None:
        return refusal
    status = (
        OrganizationMember.objects.filter(org_id=org_id, user=user).values_list("status", flat=True).first()
    )
    refusal = member_refusal(org_id, user.username, status)
    if refusal is not None:
        return refusal
    allocation = UserCreditAllocation.objects.filter(org_id=org_id, user=user, is_active=True).first()
    if allocation is None:
        return NoActiveAllocation(details={"org_id": org_id, "user_id": user.username})
    return (
        expiry_refusal(allocation)
        or funds_refusal(allocation.free_credits, amount)
        or daily_cap_refusal(allocation, amount)
    )
