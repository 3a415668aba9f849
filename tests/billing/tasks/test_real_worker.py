"""One real Celery worker process on a real Redis server (both started by the test harness)
runs tasks against the test database."""

import os
import subprocess
from datetime import UTC
from urllib.parse import urlsplit

import pytest
import redis

from billing.models import CreditReservation, CreditUsageAttribution, UsageDailyRollup, UserCreditAllocation
from billing.services import deduct_credits, reserve_credits
from tests.billing.tasks.conftest import REDIS_SCRIPT, free_port
from tests.helpers import mc


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


def test_the_test_redis_requires_its_generated_password(redis_url):
    assert redis.Redis.from_url(redis_url).ping() is True
    parsed = urlsplit(redis_url)
    assert parsed.password and len(parsed.password) >= 32
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=parsed.hostname, port=parsed.port).ping()


def test_redis_sh_changes_no_host_permissions(tmp_path):
    # pytest's temp dirs are 0700: a server user other than us cannot reach a folder inside.
    parent = tmp_path / "private"
    parent.mkdir(mode=0o700)
    modes = {p: p.stat().st_mode for p in [parent, *parent.parents]}
    root_with_redis_user = os.geteuid() == 0 and _user_exists("redis")

    started = subprocess.run(
        [str(REDIS_SCRIPT), "start", str(parent / "redis"), str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        if root_with_redis_user:
            assert started.returncode != 0
            assert "cannot reach" in started.stderr
        else:  # the server runs as us: the folder is reachable
            assert started.returncode == 0, started.stderr
    finally:
        subprocess.run([str(REDIS_SCRIPT), "stop", str(parent / "redis")], capture_output=True, timeout=60)
    assert {p: p.stat().st_mode for p in [parent, *parent.parents]} == modes


def _user_exists(name: str) -> bool:
    return subprocess.run(["id", "-u", name], capture_output=True).returncode == 0
