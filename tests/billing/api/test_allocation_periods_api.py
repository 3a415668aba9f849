"""Recurring allocations through the API (issue 14 §2): period settings on allocate and adjust,
shown in every allocation response; bad settings are 400s in the one error shape that write
nothing."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from billing.models import AuditEvent, UserCreditAllocation
from billing.services.periods import apply_allocation_periods
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.django_db

JAN_15 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def allocate_url(org_id: str) -> str:
    return reverse("org-billing-credits-allocate", args=[org_id])


def detail_url(org_id: str, user_id: str) -> str:
    return reverse("org-billing-allocation-detail", args=[org_id, user_id])


def list_url(org_id: str) -> str:
    return reverse("org-billing-allocations", args=[org_id])


def test_a_monthly_refilling_allocation_is_shown_as_such(api_client, team):
    api_client.force_login(team.admin)
    body = {
        "user_id": team.admin.username,
        "credits": 50,
        "period": "monthly",
        "period_mode": "refill",
        "rollover_cap_credits": 20,
    }
    with time_machine.travel(JAN_15, tick=False):
        response = api_client.post(allocate_url(team.org.id), body, format="json")

    assert response.status_code == 200, response.content
    allocation = response.json()["allocation"]
    assert allocation["period"] == "monthly"
    assert allocation["period_mode"] == "refill"
    assert allocation["period_amount_credits"] == 50.0
    assert allocation["rollover_cap_credits"] == 20.0
    assert allocation["current_period_start"] == "2026-01-01T00:00:00Z"
    assert allocation["next_period_start"] == "2026-02-01T00:00:00Z"
    assert allocation["period_used_credits"] == 0.0

    # after February's refill the list shows the new period
    apply_allocation_periods(now=datetime(2026, 2, 1, tzinfo=UTC))
    listed = api_client.get(list_url(team.org.id), {"user_id": team.admin.username}).json()["results"][0]
    assert (listed["period"], listed["period_mode"]) == ("monthly", "refill")
    assert listed["current_period_start"] == "2026-02-01T00:00:00Z"
    assert listed["remaining_credits"] == 70.0  # 50 + 20 of the unspent 50 carried over
    event = AuditEvent.objects.get(action="allocation.created", target_id=str(allocation["id"]))
    assert event.metadata["period"] == "monthly"
    assert event.metadata["rollover_cap"] == mc(20)


def test_a_plain_allocation_shows_no_period(api_client, team):
    api_client.force_login(team.admin)
    row = api_client.get(list_url(team.org.id)).json()["results"][0]
    assert {key: row[key] for key in row if "period" in key or key == "rollover_cap_credits"} == {
        "period": None,
        "period_mode": None,
        "period_amount_credits": None,
        "rollover_cap_credits": None,
        "current_period_start": None,
        "next_period_start": None,
        "period_used_credits": None,
    }


def test_adjust_makes_an_allocation_recurring_changes_its_mode_and_stops_it(api_client, team):
    api_client.force_login(team.admin)
    url = detail_url(team.org.id, team.member.username)

    weekly = api_client.patch(
        url, {"credits": 100, "period": "weekly", "period_amount_credits": 80}, format="json"
    )
    assert weekly.status_code == 200, weekly.content
    shown = weekly.json()["allocation"]
    assert (shown["period"], shown["period_mode"], shown["period_amount_credits"]) == (
        "weekly",
        "reset",
        80.0,
    )

    refill = api_client.patch(
        url, {"credits": 100, "period_mode": "refill", "rollover_cap_credits": 10}, format="json"
    )
    assert refill.status_code == 200, refill.content
    shown = refill.json()["allocation"]
    assert (shown["period"], shown["period_mode"], shown["rollover_cap_credits"]) == (
        "weekly",
        "refill",
        10.0,
    )

    stopped = api_client.patch(url, {"credits": 100, "period": None}, format="json")
    assert stopped.status_code == 200, stopped.content
    assert stopped.json()["allocation"]["period"] is None
    assert UserCreditAllocation.objects.get(pk=team.allocation.pk).next_period_start is None


BAD_SETTINGS = [
    pytest.param({"period": "yearly"}, "period", id="unknown-period"),
    pytest.param({"period": 1}, "period", id="period-not-a-string"),
    pytest.param({"period": ""}, "period", id="blank-period"),
    pytest.param({"period": "monthly", "period_mode": "sometimes"}, "period_mode", id="unknown-mode"),
    pytest.param({"period": "monthly", "period_mode": None}, "period_mode", id="null-mode"),
    pytest.param(
        {"period": "monthly", "period_mode": "refill", "rollover_cap_credits": -5},
        "rollover_cap_credits",
        id="negative-cap",
    ),
    pytest.param(
        {"period": "monthly", "period_mode": "reset", "rollover_cap_credits": 5},
        "rollover_cap_credits",
        id="cap-with-reset",
    ),
    pytest.param({"period": None, "period_mode": "refill"}, "period_mode", id="mode-without-period"),
    pytest.param(
        {"period": "daily", "period_amount_credits": -1}, "period_amount_credits", id="negative-amount"
    ),
    pytest.param(
        {"period": "daily", "period_amount_credits": "10"}, "period_amount_credits", id="amount-string"
    ),
]


@pytest.mark.parametrize(("settings", "field"), BAD_SETTINGS)
def test_allocate_with_bad_period_settings_is_400_and_writes_nothing(api_client, team, settings, field):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.post(
        allocate_url(team.org.id), {"user_id": team.member.username, "credits": 5, **settings}, format="json"
    )

    error = assert_error(response, 400, "validation_error")
    assert field in error["details"]["fields"], error
    assert snapshot_balances() == before


@pytest.mark.parametrize(("settings", "field"), BAD_SETTINGS)
def test_adjust_with_bad_period_settings_is_400_and_writes_nothing(api_client, team, settings, field):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.patch(
        detail_url(team.org.id, team.member.username), {"credits": 150, **settings}, format="json"
    )

    error = assert_error(response, 400, "validation_error")
    assert field in error["details"]["fields"], error
    assert snapshot_balances() == before


def test_a_cap_kept_from_a_refill_cannot_meet_a_reset_given_with_it(api_client, team):
    """A rollover cap given with a switch to reset is refused before anything is written."""
    api_client.force_login(team.admin)
    url = detail_url(team.org.id, team.member.username)
    api_client.patch(url, {"credits": 100, "period": "daily", "period_mode": "refill"}, format="json")
    before = snapshot_balances()

    response = api_client.patch(
        url, {"credits": 300, "period_mode": "reset", "rollover_cap_credits": 5}, format="json"
    )

    assert_error(response, 400, "validation_error")
    assert snapshot_balances() == before


def test_period_settings_alone_need_a_recurring_allocation(api_client, team):
    """A mode or cap sent for an allocation that does not recur (and no period) is refused by
    the ledger under its locks, with the credits change of the same request rolled back."""
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.patch(
        detail_url(team.org.id, team.member.username),
        {"credits": 300, "period_mode": "refill"},
        format="json",
    )

    error = assert_error(response, 400, "validation_error")
    assert error["details"] == {"period_mode": "needs a period"}, error
    assert snapshot_balances() == before


def test_switching_to_reset_drops_a_cap_nobody_restated(api_client, team):
    api_client.force_login(team.admin)
    url = detail_url(team.org.id, team.member.username)
    api_client.patch(
        url,
        {"credits": 100, "period": "daily", "period_mode": "refill", "rollover_cap_credits": 5},
        format="json",
    )

    response = api_client.patch(url, {"credits": 100, "period_mode": "reset"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["allocation"]["rollover_cap_credits"] is None


def test_a_member_cannot_make_their_own_allocation_recurring(api_client, team):
    api_client.force_login(team.member)
    before = snapshot_balances()
    response = api_client.patch(
        detail_url(team.org.id, team.member.username), {"credits": 100, "period": "daily"}, format="json"
    )
    assert response.status_code == 403
    assert snapshot_balances() == before


def test_the_period_used_counts_only_the_current_period(api_client, team):
    from billing.services import deduct_credits

    api_client.force_login(team.admin)
    with time_machine.travel(JAN_15, tick=False):
        api_client.patch(
            detail_url(team.org.id, team.member.username), {"credits": 100, "period": "daily"}, format="json"
        )
        deduct_credits(user=team.member, org_id=team.org.id, amount=mc(5), request_id="today")
    apply_allocation_periods(now=JAN_15 + timedelta(days=1))
    with time_machine.travel(JAN_15 + timedelta(days=1, hours=1), tick=False):
        deduct_credits(user=team.member, org_id=team.org.id, amount=mc(2), request_id="tomorrow")

    row = api_client.get(list_url(team.org.id), {"user_id": team.member.username}).json()["results"][0]
    assert row["period_used_credits"] == 2.0
    assert row["used_credits"] == 7.0
