"""The database itself refuses rows that break a single-row invariant."""

import pytest
from django.db import IntegrityError, connection, transaction

from billing.models import CreditUsageAttribution, UserCreditAllocation
from billing.services import deduct_credits
from tests.helpers import mc

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE user_credit_allocations SET used_credits = allocated_credits + 1 WHERE id = %(alloc)s",
        "UPDATE user_credit_allocations SET reserved_credits = -1 WHERE id = %(alloc)s",
        "UPDATE user_credit_allocations SET is_active = false WHERE id = %(alloc)s",
        "UPDATE organization_credit_pools SET allocated_credits = total_credits + 1 WHERE org_id = %(org)s",
        "UPDATE organization_credit_pools SET used_credits = -1 WHERE org_id = %(org)s",
        "UPDATE organization_credit_pools SET used_credits = allocated_credits + 1 WHERE org_id = %(org)s",
        "UPDATE credit_usage_attribution SET credits_used = -1 WHERE allocation_id = %(alloc)s",
        "UPDATE credit_usage_attribution SET allocation_id = NULL WHERE allocation_id = %(alloc)s",
    ],
)
def test_check_constraints_refuse_broken_rows(make_funded_member, sql):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="r")
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, {"alloc": allocation.pk, "org": org.id})


def test_one_active_allocation_per_member(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        UserCreditAllocation.objects.create(org=org, user=user, allocated_credits=0)


def test_request_id_is_unique_per_org(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="dup")
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditUsageAttribution.objects.create(
            org=org, user=user, allocation=allocation, credits_used=0, balance_after=0, request_id="dup"
        )
