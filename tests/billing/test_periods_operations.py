"""Recurring allocations for operators (issue 14 §2): the ``apply_allocation_periods`` command
(``--dry-run`` changes nothing) and the admin (period settings shown, the period history as a
read-only inline)."""

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from billing.models import AllocationPeriod, AuditEvent
from billing.services import PeriodChange
from billing.services.periods import apply_allocation_periods
from tests.billing.test_periods import FEB_1, recurring_member
from tests.helpers import mc, snapshot_balances

pytestmark = pytest.mark.django_db

MARCH_2 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_the_command_lists_due_boundaries_on_a_dry_run_then_applies_them():
    _org, user, allocation = recurring_member()
    before = snapshot_balances()

    with time_machine.travel(MARCH_2, tick=False):
        out = StringIO()
        call_command("apply_allocation_periods", "--dry-run", stdout=out, stderr=StringIO())
        assert snapshot_balances() == before
        assert not AllocationPeriod.objects.exists()
        assert (
            f"would apply 2 monthly boundary(ies) (reset) to allocation #{allocation.pk} {user.username}"
            in (out.getvalue())
        )
        assert "1 allocation(s) with due periods; nothing changed" in out.getvalue()

        out = StringIO()
        call_command("apply_allocation_periods", "--no-progress", stdout=out, stderr=StringIO())
        assert "Applied 2 period boundary(ies) to 1 allocation(s)." in out.getvalue()

        out = StringIO()
        call_command("apply_allocation_periods", "--no-progress", stdout=out, stderr=StringIO())
        assert "Applied 0 period boundary(ies) to 0 allocation(s)." in out.getvalue()
    assert AllocationPeriod.objects.filter(allocation=allocation).count() == 2
    labels = set(
        AuditEvent.objects.filter(action="allocation.period_applied").values_list("actor_label", flat=True)
    )
    assert labels == {"command:apply_allocation_periods"}


def test_the_command_reports_a_shortfall():
    org, user, _allocation = recurring_member(pool=100)
    from billing.services import deduct_credits

    with time_machine.travel(datetime(2026, 1, 20, tzinfo=UTC), tick=False):
        deduct_credits(user=user, org_id=org.id, amount=mc(40), request_id="jan")
    with time_machine.travel(FEB_1, tick=False):
        out = StringIO()
        call_command("apply_allocation_periods", "--no-progress", stdout=out, stderr=StringIO())
    assert "40.000 credits short" in out.getvalue()


def test_the_admin_shows_the_period_settings_and_history_read_only(admin_client: Client):
    change = PeriodChange(period="monthly", mode="refill", rollover_cap=mc(25))
    _org, _user, allocation = recurring_member(change=change, amount=80)
    apply_allocation_periods(now=FEB_1)
    before = snapshot_balances()

    url = reverse("admin:billing_usercreditallocation_change", args=[allocation.pk])
    page = admin_client.get(url)
    listing = admin_client.get(
        reverse("admin:billing_usercreditallocation_changelist"), {"period": "monthly"}
    )

    assert page.status_code == 200
    html = page.content.decode()
    shown = ("Period amount (credits)", "80.000", "Rollover cap (credits)", "25.000", "Refill", "Monthly")
    for text in shown:
        assert text in html, text
    assert "Carried over (credits)" in html  # the period history inline
    assert "Feb. 1, 2026" in html
    assert 'name="periods-0-drawn"' not in html
    assert listing.context["cl"].result_count == 1
    assert admin_client.post(url, {"period": "daily"}).status_code == 403
    assert snapshot_balances() == before
