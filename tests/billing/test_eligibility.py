"""The one spending rule (``billing.ledger.eligibility``): the ORM answer ``spend_refusal``, the
SQL fragments the fast paths compose, and the fast paths themselves agree on every state."""

import itertools
import uuid
from datetime import UTC, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from billing.ledger.eligibility import ACTIVE_ORG, SPENDABLE_ALLOCATION, SPENDABLE_INDIVIDUAL, spend_refusal
from billing.models import UserCreditAllocation
from billing.services import (
    add_individual_credits,
    deduct_credits,
    has_sufficient_credits,
    release_reservation,
    reserve_credits,
    revoke_allocation,
)
from organizations.models import Organization, OrganizationMember, User
from orgbilling.errors import ApplicationError
from tests.factories import UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db

AMOUNT = mc(10)
MEMBER_STATES = ("active", "suspended", "invited", "none")
ORG_STATES = ("active", "inactive")
ALLOCATION_STATES = (
    "fits",
    "insufficient",
    "held",
    "expired",
    "revoked",
    "none",
    "capped",
    "capped_yesterday",
    "capped_and_insufficient",
)

# The precedence every path must keep: org → membership → allocation → expiry → free credits
# → daily cap.
ALLOCATION_REFUSALS = {
    "fits": None,
    "capped": "daily_cap_reached",
    "capped_yesterday": None,  # yesterday's spend does not count today
    "capped_and_insufficient": "insufficient_credits",
    "insufficient": "insufficient_credits",
    "held": "insufficient_credits",
    "expired": "allocation_expired",
    "revoked": "no_active_allocation",
    "none": "no_active_allocation",
}


def expected_refusal(org: str, member: str, allocation: str) -> str | None:
    if org == "inactive":
        return "organization_inactive"
    if member != "active":
        return "not_a_member"
    return ALLOCATION_REFUSALS[allocation]


def build_state(
    make_funded_member, *, org_state: str, member_state: str, allocation_state: str
) -> tuple[str, User]:
    org, user, allocation = make_funded_member(pool=1000, allocation=100)
    rows = UserCreditAllocation.objects.filter(pk=allocation.pk)
    if allocation_state == "insufficient":
        rows.update(used_credits=mc(95))
    elif allocation_state == "held":
        rows.update(reserved_credits=mc(95))
    elif allocation_state == "expired":
        rows.update(expires_at=timezone.now() - timedelta(minutes=1))
    elif allocation_state == "revoked":
        revoke_allocation(org_id=org.pk, user=user, actor_label="test")
    elif allocation_state == "none":
        rows.delete()
    elif allocation_state.startswith("capped"):
        # 95 spent today against a cap of 100: 10 more do not fit; yesterday's 95 do not count.
        day = timezone.now().astimezone(UTC).date()
        if allocation_state == "capped_yesterday":
            day -= timedelta(days=1)
        rows.update(daily_cap_credits=mc(100), cap_day=day, cap_day_spent=mc(95))
        if allocation_state == "capped_and_insufficient":
            rows.update(used_credits=mc(95))
    members = OrganizationMember.objects.filter(org=org, user=user)
    if member_state == "none":
        members.delete()
    elif member_state == "invited":
        # The shape an invitation has (organization_members_invited_shape).
        members.update(
            status=member_state,
            is_default=False,
            expires_at=timezone.now() + timedelta(days=7),
            invitation_id=uuid.uuid4(),
        )
    elif member_state != "active":
        members.update(status=member_state)
    if org_state == "inactive":
        Organization.objects.filter(pk=org.pk).update(is_active=False)
    return org.pk, user


def sql_allows(org_id: str | None, user: User, amount: int) -> bool:
    """The fast paths' rule, run alone: is there a row the conditional UPDATE would charge?"""
    now = timezone.now()
    params: dict[str, Any] = {
        "org_id": org_id,
        "user_id": user.pk,
        "amount": amount,
        "now": now,
        "today": now.astimezone(UTC).date(),
    }
    if org_id is None:
        rows = f"individual_credit_balances WHERE user_id = %(user_id)s AND {SPENDABLE_INDIVIDUAL}"
    else:
        rows = f"user_credit_allocations a WHERE {SPENDABLE_ALLOCATION} AND {ACTIVE_ORG}"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {rows})", params)
        return bool(cursor.fetchone()[0])


def code_of(call) -> str | None:  # type: ignore[no-untyped-def]
    try:
        result = call()
    except ApplicationError as error:
        return error.code
    if hasattr(result, "reservation_id") and hasattr(result, "amount"):
        release_reservation(reservation_id=result.reservation_id)
    return None


def assert_paths_agree(org_id: str | None, user: User, expected: str | None) -> None:
    refusal = spend_refusal(org_id=org_id, user=user, amount=AMOUNT)
    assert (refusal.code if refusal else None) == expected
    assert sql_allows(org_id, user, AMOUNT) is (expected is None)
    assert has_sufficient_credits(user=user, org_id=org_id, amount=AMOUNT) is (expected is None)
    hold = code_of(lambda: reserve_credits(user=user, org_id=org_id, amount=AMOUNT, request_id="hold-1"))
    assert hold == expected
    charge = code_of(lambda: deduct_credits(user=user, org_id=org_id, amount=AMOUNT, request_id="charge-1"))
    assert charge == expected


@pytest.mark.parametrize(
    ("org_state", "member_state", "allocation_state"),
    list(itertools.product(ORG_STATES, MEMBER_STATES, ALLOCATION_STATES)),
)
def test_orm_rule_sql_fragment_and_fast_paths_refuse_alike(
    make_funded_member, org_state: str, member_state: str, allocation_state: str
) -> None:
    # given
    org_id, user = build_state(
        make_funded_member, org_state=org_state, member_state=member_state, allocation_state=allocation_state
    )
    # then
    assert_paths_agree(org_id, user, expected_refusal(org_state, member_state, allocation_state))


def test_an_organization_that_does_not_exist_is_refused_alike_everywhere() -> None:
    assert_paths_agree("no-such-org", UserFactory(), "organization_not_found")


@pytest.mark.parametrize(
    ("credits", "expected"),
    [(None, "insufficient_credits"), (5, "insufficient_credits"), (10, None), (50, None)],
)
def test_individual_credits_are_refused_alike_everywhere(credits: int | None, expected: str | None) -> None:
    # given: no balance row at all, too little, exactly enough, plenty
    user = UserFactory()
    if credits is not None:
        add_individual_credits(user=user, amount=mc(credits), actor_label="test")
    # then
    assert_paths_agree(None, user, expected)
