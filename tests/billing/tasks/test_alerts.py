"""Usage alerts at 50/80/90/100 % of an allocation and of a pool, with a frozen clock:
each fires once per threshold per period (UTC month), resolves when credits are added."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command

from billing.models import AuditEvent, UsageAlert
from billing.services import add_credits_to_pool, adjust_allocation, allocate_credits_to_user, deduct_credits
from billing.services.alerts import evaluate_usage_alerts
from billing.tasks import evaluate_usage_alerts as evaluate_task
from organizations.models import OrganizationMember
from organizations.services import add_member, create_organization
from tests.billing.tasks.conftest import at
from tests.concurrency import run_concurrently
from tests.factories import UserFactory
from tests.helpers import mc

NOW = at("2026-06-10T08:00:00+00:00")
NEXT_MONTH = at("2026-07-01T00:00:00+00:00")


class Org:
    """An org with an admin (with e-mail), a billing address, a plain member and a spender."""

    def __init__(self, *, pool: int = 1000, allocation: int = 100, org_id: str = "acme") -> None:
        self.admin = UserFactory(username=f"{org_id}-admin", email=f"admin@{org_id}.test")
        self.org = create_organization(
            org_id=org_id, org_name=org_id, created_by=self.admin, billing_email=f"billing@{org_id}.test"
        )
        if not OrganizationMember.objects.filter(org=self.org, user=self.admin).exists():
            add_member(org_id=org_id, user=self.admin, role=OrganizationMember.Role.ADMIN)
        self.member = UserFactory(username=f"{org_id}-member", email=f"member@{org_id}.test")
        add_member(org_id=org_id, user=self.member)
        add_credits_to_pool(org_id=org_id, amount=mc(pool), actor_label="test")
        self.allocation = allocate_credits_to_user(
            org_id=org_id, user=self.member, amount=mc(allocation), actor_label="test"
        ).allocation
        self.spent = 0

    def spend(self, credits: int) -> None:
        self.spent += 1
        deduct_credits(
            user=self.member,
            org_id=self.org.id,
            amount=mc(credits),
            request_id=f"r{self.spent}",
            service_name="m",
        )


def fired(**filters):
    return sorted(
        (a.scope, a.threshold, a.status, a.times_fired) for a in UsageAlert.objects.filter(**filters)
    )


def audit(action):
    return sorted((e.target_type, e.metadata["threshold"]) for e in AuditEvent.objects.filter(action=action))


@pytest.mark.django_db
def test_each_allocation_threshold_fires_once_with_one_email_to_the_admins(run_on_commit):
    with time_machine.travel(NOW, tick=False):
        acme = Org()
        acme.spend(49)
        assert run_on_commit(evaluate_usage_alerts).changes == []
        assert mail.outbox == []

        acme.spend(1)  # 50 %
        result = run_on_commit(evaluate_usage_alerts)
        assert [(c.kind, c.scope, c.threshold) for c in result.changes] == [("triggered", "allocation", 50)]
        assert len(mail.outbox) == 1
        message = mail.outbox[0]
        assert sorted(message.to) == ["admin@acme.test", "billing@acme.test"]  # not the plain member
        assert (
            message.subject
            == "[orgbilling] acme: the allocation of acme-member in acme has used 50% of its credits"
        )
        assert "has used 50.000 of 100.000 credits (50%)" in message.body

        # The same usage checked again (and again): nothing new, nobody mailed.
        for _ in range(3):
            assert run_on_commit(evaluate_usage_alerts).changes == []
        assert len(mail.outbox) == 1

        acme.spend(35)  # 85 %
        run_on_commit(evaluate_usage_alerts)
        acme.spend(15)  # 100 %: 90 and 100 cross together, one e-mail
        run_on_commit(evaluate_usage_alerts)
        run_on_commit(evaluate_usage_alerts)

    assert fired() == [("allocation", t, "firing", 1) for t in (50, 80, 90, 100)]
    assert audit("usage_alert.triggered") == [("allocation", t) for t in (50, 80, 90, 100)]
    assert [m.subject.rsplit(" ", 4)[-4] for m in mail.outbox] == ["50%", "80%", "100%"]
    assert "Thresholds reached: 90%, 100%." in mail.outbox[2].body
    # The charging path's own 90 % marker is recorded once, independently (docs/decisions.md).
    assert AuditEvent.objects.filter(action="allocation.exhausted").count() == 1
    event = AuditEvent.objects.filter(action="usage_alert.triggered", metadata__threshold=100).get()
    assert event.org_id == "acme"
    assert event.target_id == str(acme.allocation.pk)
    assert event.metadata["user_id"] == "acme-member"
    assert event.metadata["period"] == "2026-06"


@pytest.mark.django_db
def test_alerts_fire_once_more_in_the_next_period(run_on_commit):
    with time_machine.travel(NOW, tick=False):
        acme = Org()
        acme.spend(85)
        run_on_commit(evaluate_usage_alerts)
    with time_machine.travel(NEXT_MONTH - timedelta(seconds=1), tick=False):
        assert run_on_commit(evaluate_usage_alerts).changes == []
    with time_machine.travel(NEXT_MONTH, tick=False):
        result = run_on_commit(evaluate_usage_alerts)
        assert sorted(c.threshold for c in result.changes) == [50, 80]
        assert run_on_commit(evaluate_usage_alerts).changes == []
    assert sorted((a.period_start.isoformat(), a.threshold) for a in UsageAlert.objects.all()) == [
        ("2026-06-01", 50),
        ("2026-06-01", 80),
        ("2026-07-01", 50),
        ("2026-07-01", 80),
    ]
    assert len(mail.outbox) == 2
    assert len(audit("usage_alert.triggered")) == 4


@pytest.mark.django_db
def test_adding_credits_resolves_the_alerts_usage_fell_below_and_they_can_fire_again(run_on_commit):
    with time_machine.travel(NOW, tick=False):
        acme = Org()
        acme.spend(92)
        run_on_commit(evaluate_usage_alerts)
        mail.outbox.clear()

        # when: the admin raises the allocation to 200 credits (92 used = 46 %)
        adjust_allocation(org_id="acme", user=acme.member, allocated=mc(200), actor_label="test")
        result = run_on_commit(evaluate_usage_alerts)

    # then: 50/80/90 resolve, once, with one e-mail
    assert sorted((c.kind, c.threshold) for c in result.changes) == [("resolved", t) for t in (50, 80, 90)]
    assert fired() == [("allocation", t, "resolved", 1) for t in (50, 80, 90)]
    assert audit("usage_alert.resolved") == [("allocation", t) for t in (50, 80, 90)]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.endswith("is back below 50% used")
    assert "Resolved: 50%, 80%, 90%." in mail.outbox[0].body
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        assert run_on_commit(evaluate_usage_alerts).changes == []

        # Crossing 50 % again after the resolution is a new crossing: told again.
        acme.spend(10)  # 102 / 200 = 51 %
        result = run_on_commit(evaluate_usage_alerts)
    assert [(c.kind, c.threshold) for c in result.changes] == [("triggered", 50)]
    alert = UsageAlert.objects.get(threshold=50)
    assert (alert.status, alert.times_fired, alert.resolved_at) == ("firing", 2, None)
    assert alert.first_fired_at == NOW and alert.last_fired_at == NOW + timedelta(minutes=5)


@pytest.mark.django_db
def test_pool_thresholds_fire_on_usage_of_the_pool_and_resolve_when_credits_are_bought(run_on_commit):
    with time_machine.travel(NOW, tick=False):
        acme = Org(pool=100, allocation=100)
        acme.spend(80)
        run_on_commit(evaluate_usage_alerts)
        assert fired(scope="pool") == [("pool", 50, "firing", 1), ("pool", 80, "firing", 1)]
        pool_mail = [m for m in mail.outbox if "credit pool" in m.subject]
        assert [m.subject for m in pool_mail] == [
            "[orgbilling] acme: the credit pool of acme has used 80% of its credits"
        ]

        add_credits_to_pool(org_id="acme", amount=mc(100), actor_label="test")  # 80 / 200 = 40 %
        result = run_on_commit(evaluate_usage_alerts)
    assert sorted((c.kind, c.scope, c.threshold) for c in result.changes) == [
        ("resolved", "pool", 50),
        ("resolved", "pool", 80),
    ]
    assert fired(scope="allocation") == [("allocation", 50, "firing", 1), ("allocation", 80, "firing", 1)]
    event = AuditEvent.objects.filter(action="usage_alert.resolved").first()
    assert (event.target_type, event.target_id, event.metadata["percent_used"]) == ("credit_pool", "acme", 40)


@pytest.mark.django_db
def test_inactive_organizations_and_revoked_allocations_are_not_alerted(run_on_commit):
    with time_machine.travel(NOW, tick=False):
        acme = Org()
        acme.spend(60)
        other = Org(org_id="gone")
        other.spend(60)
        from organizations.models import Organization

        Organization.objects.filter(pk="gone").update(is_active=False)
        result = run_on_commit(evaluate_usage_alerts)
    assert {(c.org_id, c.scope) for c in result.changes} == {("acme", "allocation")}


@pytest.mark.django_db
def test_check_usage_alerts_command_and_task(run_on_commit):
    with time_machine.travel(NOW, tick=False):
        acme = Org()
        acme.spend(50)
        out = StringIO()
        run_on_commit(call_command, "check_usage_alerts", stdout=out)
        assert f"triggered: acme allocation #{acme.allocation.pk} 50%" in out.getvalue()
        assert "1 alert(s) triggered, 0 resolved." in out.getvalue()
        assert evaluate_task.delay().get() == {"targets_checked": 1, "triggered": 0, "resolved": 0}


@pytest.mark.django_db(transaction=True)
def test_concurrent_passes_fire_each_threshold_once():
    # One target only: its one e-mail is sent (eagerly) by whichever thread fired the alerts.
    # Celery's eager mode flips a process-wide flag around each call, so eager calls from
    # several threads at once are avoided in tests.
    with time_machine.travel(NOW, tick=False):
        acme = Org(pool=1000, allocation=100)
        acme.spend(95)
        results = run_concurrently(lambda _i: evaluate_usage_alerts(), 6)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(c.threshold for r in results for c in r.changes) == [50, 80, 90]
    assert UsageAlert.objects.count() == 3
    assert AuditEvent.objects.filter(action="usage_alert.triggered").count() == 3
    assert len(mail.outbox) == 1
