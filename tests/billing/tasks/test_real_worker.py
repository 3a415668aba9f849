"""One real Celery worker process on a real Redis server (both started by the test harness)
runs tasks against the test database."""

from datetime import UTC

import pytest

from billing.models import CreditReservation, CreditUsageAttribution, UsageDailyRollup, UserCreditAllocation
from billing.services import deduct_credits, reserve_credits
from tests.conftest import mc


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_on_redis_rolls_up_usage_and_releases_stale_holds(
    make_funded_member, celery_worker_process
):
    # given: committed usage and a hold that is already past its expiry
    org, user, allocation = make_funded_member(pool=100, allocation=50)
    deduct_credits(user=user, org_id=org.id, amount=mc("2.5"), request_id="w1", service_name="gpt-4o-mini")
    deduct_credits(user=user, org_id=org.id, amount=mc("1.5"), request_id="w2", service_name="gpt-4o-mini")
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(3), request_id="crashed", ttl_seconds=0)

    # when: the tasks are sent through Redis (this process runs tasks eagerly: only the worker
    # can have run them)
    rolled = celery_worker_process.run("billing.tasks.rollup_usage")
    released = celery_worker_process.run("billing.tasks.expire_reservations")

    # then: their effects are in the database
    day = CreditUsageAttribution.objects.get(request_id="w1").created_at.astimezone(UTC).date()
    assert rolled["rows"] == 1
    row = UsageDailyRollup.objects.get()
    assert (row.org_id, row.user_id, row.model, row.day) == (org.id, user.pk, "gpt-4o-mini", day)
    assert (row.requests, row.credits_used) == (2, mc(4))
    assert released == {"expired": 1}
    assert CreditReservation.objects.get(pk=hold.reservation_id).status == "expired"
    assert UserCreditAllocation.objects.get(pk=allocation.pk).reserved_credits == 0
