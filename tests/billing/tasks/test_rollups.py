"""Daily usage rollups: (org, user, model, UTC day) → requests, tokens, credits; idempotent."""

from datetime import date, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from billing.models import UsageDailyRollup
from billing.services import add_individual_credits, deduct_credits
from billing.services.rollups import rollup_usage as recompute
from billing.tasks import rollup_usage
from organizations.services import add_member
from tests.billing.tasks.conftest import at
from tests.helpers import mc

pytestmark = pytest.mark.django_db

DAY1 = at("2026-05-01T10:00:00+00:00")
DAY2 = at("2026-05-02T00:00:00+00:00")  # midnight UTC belongs to day 2


def charge(user, org_id, credits, request_id, model="gpt-4o-mini", tokens=(100, 50)):
    deduct_credits(
        user=user,
        org_id=org_id,
        amount=mc(credits),
        request_id=request_id,
        service_name=model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
    )


def rollups():
    return {
        (r.org_id, r.user.username, r.model, r.day): (
            r.requests,
            r.input_tokens,
            r.output_tokens,
            r.credits_used,
        )
        for r in UsageDailyRollup.objects.select_related("user")
    }


@pytest.fixture
def usage(make_funded_member):
    """Two members of one org and one of them also paying from individual credits, over two days."""
    with time_machine.travel(DAY1, tick=False):
        org, alice, _ = make_funded_member(pool=1000, allocation=100)
        _, bob, _ = make_funded_member(org=org, pool=0, allocation=100)
        charge(alice, org.id, "1.5", "a1")
        charge(alice, org.id, "2", "a2", tokens=(10, 5))
        charge(alice, org.id, "3", "a3", model="claude")
        charge(bob, org.id, "4", "b1")
        add_individual_credits(user=alice, amount=mc(50), actor_label="test")
        charge(alice, None, "5", "own-1")  # individual credits: org is null
    with time_machine.travel(DAY2, tick=False):
        charge(alice, org.id, "6", "a4")
        charge(alice, None, "7", "own-2")
    return org, alice, bob


def test_rollup_groups_usage_by_org_user_model_and_utc_day(usage):
    org, alice, bob = usage
    with time_machine.travel(DAY2 + timedelta(hours=1), tick=False):
        result = rollup_usage.delay().get()
    assert result == {"first_day": "2026-05-01", "last_day": "2026-05-02", "rows": 6}
    d1, d2 = date(2026, 5, 1), date(2026, 5, 2)
    assert rollups() == {
        (org.id, alice.username, "gpt-4o-mini", d1): (2, 110, 55, mc("3.5")),
        (org.id, alice.username, "claude", d1): (1, 100, 50, mc(3)),
        (org.id, bob.username, "gpt-4o-mini", d1): (1, 100, 50, mc(4)),
        (None, alice.username, "gpt-4o-mini", d1): (1, 100, 50, mc(5)),
        (org.id, alice.username, "gpt-4o-mini", d2): (1, 100, 50, mc(6)),
        (None, alice.username, "gpt-4o-mini", d2): (1, 100, 50, mc(7)),
    }


def test_recomputing_is_idempotent_and_picks_up_new_usage(usage):
    org, alice, _ = usage
    with time_machine.travel(DAY2 + timedelta(hours=1), tick=False):
        rollup_usage.delay().get()
        first = rollups()
        rollup_usage.delay().get()
        assert rollups() == first
        assert UsageDailyRollup.objects.count() == 6

        charge(alice, org.id, "0.5", "a5")
        charge(alice, None, "0.25", "own-3")
        rollup_usage.delay().get()
    after = rollups()
    d2 = date(2026, 5, 2)
    assert after[(org.id, alice.username, "gpt-4o-mini", d2)] == (2, 200, 100, mc("6.5"))
    assert after[(None, alice.username, "gpt-4o-mini", d2)] == (2, 200, 100, mc("7.25"))
    assert {k: v for k, v in after.items() if k[3] != d2} == {k: v for k, v in first.items() if k[3] != d2}


def test_the_default_pass_covers_yesterday_and_today_only(usage):
    with time_machine.travel(DAY2 + timedelta(days=1), tick=False):  # May 3rd: May 2nd and 3rd
        assert rollup_usage.delay().get()["rows"] == 2
    assert {key[3] for key in rollups()} == {date(2026, 5, 2)}
    with time_machine.travel(DAY2 + timedelta(days=1), tick=False):
        assert rollup_usage.delay(since="2026-05-01").get()["rows"] == 6


def test_rollup_totals_equal_the_ledger(usage):
    from django.db.models import Count, Sum

    from billing.models import CreditUsageAttribution

    with time_machine.travel(DAY2, tick=False):
        recompute(first_day=date(2026, 4, 30), last_day=date(2026, 5, 2))
    ledger = CreditUsageAttribution.objects.aggregate(n=Count("id"), credits=Sum("credits_used"))
    rolled = UsageDailyRollup.objects.aggregate(n=Sum("requests"), credits=Sum("credits_used"))
    assert rolled == ledger


def test_rollup_usage_command(usage):
    out = StringIO()
    with time_machine.travel(DAY2 + timedelta(days=5), tick=False):
        call_command("rollup_usage", "--since", "2026-05-01", "--no-progress", stdout=out, stderr=StringIO())
    assert "Rolled up 2026-05-01 to 2026-05-07: 6 rollup row(s) written." in out.getvalue()
    assert UsageDailyRollup.objects.count() == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "is not a date"),
        (("--since", "2026-05-02", "--until", "2026-05-01"), "is before"),
    ],
)
def test_rollup_usage_command_refuses_bad_dates(usage, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("rollup_usage", *args, stdout=StringIO(), stderr=StringIO())
    assert UsageDailyRollup.objects.count() == 0


def test_members_added_later_do_not_disturb_other_orgs_rollups(usage, make_funded_member):
    org, alice, _ = usage
    with time_machine.travel(DAY2, tick=False):
        other, carol, _ = make_funded_member(pool=100, allocation=10)
        add_member(org_id=other.id, user=alice, actor_label="test")
        charge(carol, other.id, "1", "c1")
        recompute(first_day=date(2026, 5, 1), last_day=date(2026, 5, 2))
    by_org = {}
    for row in UsageDailyRollup.objects.all():
        by_org.setdefault(row.org_id, 0)
        by_org[row.org_id] += row.credits_used
    assert by_org == {org.id: mc("16.5"), other.id: mc(1), None: mc(12)}
