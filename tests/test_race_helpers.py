"""The race helpers of tests/concurrency.py do what the race tests rely on."""

import pytest
from django.db import OperationalError, transaction

from billing.models import OrganizationCreditPool
from tests.concurrency import in_open_transaction
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def lock_now(org_id: str) -> OrganizationCreditPool:
    with transaction.atomic():
        return OrganizationCreditPool.objects.select_for_update(nowait=True).get(org_id=org_id)


def test_the_block_runs_while_the_other_transaction_holds_its_lock_and_it_is_free_after():
    org = OrganizationFactory()

    def lock_pool() -> OrganizationCreditPool:
        return OrganizationCreditPool.objects.select_for_update().get(org_id=org.id)

    with in_open_transaction(lock_pool) as held:
        assert held.org_id == org.id
        with pytest.raises(OperationalError, match="could not obtain lock"):
            lock_now(org.id)
    assert lock_now(org.id).org_id == org.id


def test_what_the_other_transaction_wrote_is_rolled_back():
    org = OrganizationFactory()

    def add_credits() -> int:
        return OrganizationCreditPool.objects.filter(org=org).update(total_credits=5)

    with in_open_transaction(add_credits) as updated:
        assert updated == 1
        assert OrganizationCreditPool.objects.get(org=org).total_credits == 0
    assert OrganizationCreditPool.objects.get(org=org).total_credits == 0


def test_an_error_in_the_other_transaction_is_raised_in_the_test():
    def fail() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"), in_open_transaction(fail):
        pytest.fail("the block must not run when the work failed")
