"""A stuck row lock becomes a clean, retryable refusal on the served app (``lock_timeout``)."""

import time
from pathlib import Path

import httpx

from billing.models import CreditUsageAttribution, UserCreditAllocation
from tests.concurrency import in_open_transaction
from tests.load.test_served_under_load import MODEL, assert_ledger_clean, build_teams
from tests.served import served_app


def test_a_charge_waiting_on_a_stuck_lock_answers_database_busy_and_its_retry_is_charged_once(
    transactional_db, tmp_path: Path
):
    # given: a member's allocation row locked by a transaction that does not end
    team = build_teams(1, 1)[0]
    user, _ = team.members[0]
    allocation = UserCreditAllocation.objects.get(user=user)
    body = {"user_id": user.username, "org_id": team.org.id, "model": MODEL, "input_tokens": 100,
            "output_tokens": 20, "request_id": "stuck-lock-1"}  # fmt: skip
    headers = {"Authorization": f"Bearer {team.service_key}"}

    def lock_allocation() -> UserCreditAllocation:
        return UserCreditAllocation.objects.select_for_update().get(pk=allocation.pk)

    with served_app(tmp_path, DB_LOCK_TIMEOUT_MS="300") as app:
        with in_open_transaction(lock_allocation):
            # when: a charge needs that row
            started = time.monotonic()
            refused = httpx.post(
                f"{app.url}/api/v1/org-billing/charges", json=body, headers=headers, timeout=30
            )
            waited = time.monotonic() - started
        # then: a prompt 503 database_busy with Retry-After, and nothing charged
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "database_busy"
        assert refused.headers["Retry-After"] == "1"
        assert waited < 5
        assert not CreditUsageAttribution.objects.filter(request_id="stuck-lock-1").exists()
        # and once the lock is gone, the retry is charged, and a second retry replays it
        first = httpx.post(f"{app.url}/api/v1/org-billing/charges", json=body, headers=headers, timeout=30)
        again = httpx.post(f"{app.url}/api/v1/org-billing/charges", json=body, headers=headers, timeout=30)
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert again.json()["replayed"] is True
    assert CreditUsageAttribution.objects.filter(request_id="stuck-lock-1").count() == 1
    assert_ledger_clean()
