"""Subscriptions against the real local Lago stand-in: activation and initial credits commit
together, the retry task survives a failing row and gives up after its cap, Lago's refusals are
final, and plan changes and cancels racing on real threads leave Lago and our row in line."""

import time

import pytest

from billing.models import (
    AuditEvent,
    OrganizationCreditPool,
    OrganizationSubscription,
    OrgBillingHistory,
)
from billing.services.subscriptions import (
    cancel_subscription,
    change_subscription_plan,
    create_subscription,
)
from billing.tasks import retry_pending_subscriptions
from orgbilling.errors import ApplicationError, Conflict
from tests.concurrency import run_concurrently
from tests.factories import UserFactory
from tests.helpers import assert_error, mc

CREATE_URL = "/api/v1/org-billing/subscriptions"


def pending_subscription(fake_lago, org_id: str, *, credits: int = 100) -> OrganizationSubscription:
    """A subscription left ``pending`` by a Lago 5xx."""
    fake_lago.fail_next("/api/v1/subscriptions", "POST", status=500)
    with pytest.raises(Exception, match="unavailable"):
        create_subscription(
            org_id=org_id, plan_code="starter", owner=UserFactory(), initial_credits=mc(credits)
        )
    return OrganizationSubscription.objects.get(org_id=org_id)


def pool_total(org_id: str) -> int:
    return OrganizationCreditPool.objects.get(org_id=org_id).total_credits


@pytest.mark.django_db
def test_a_failing_grant_keeps_the_subscription_pending_and_the_retry_goes_on(fake_lago):
    broken = pending_subscription(fake_lago, "broken-org")
    healthy = pending_subscription(fake_lago, "healthy-org")
    # The grant of `broken` cannot be written: its key is taken by another credit change.
    OrgBillingHistory.objects.create(
        org_id="broken-org",
        event_type="credit_grant",
        external_id=f"subscription-{broken.pk}-initial-credits",
        credits=mc(1),
        status="completed",
        occurred_at=broken.created_at,
    )

    result = retry_pending_subscriptions.apply().get()

    assert result == {"activated": [healthy.pk], "still_pending": [], "failed": [broken.pk]}
    broken.refresh_from_db()
    # never active without its credits
    assert broken.status == "pending" and "Conflict" in broken.last_backend_error
    assert pool_total("broken-org") == 0
    assert pool_total("healthy-org") == mc(100)


@pytest.mark.django_db
def test_the_retry_task_grants_an_active_subscription_its_missing_initial_credits(fake_lago):
    change = create_subscription(org_id="old-org", plan_code="starter", owner=UserFactory())
    # An activation committed before the grant and never granted (a crash in between).
    OrganizationSubscription.objects.filter(pk=change.subscription.pk).update(initial_credits=mc(40))

    first = retry_pending_subscriptions.apply().get()
    second = retry_pending_subscriptions.apply().get()

    assert first["activated"] == [change.subscription.pk]
    assert second == {"activated": [], "still_pending": [], "failed": []}
    assert pool_total("old-org") == mc(40)


@pytest.mark.django_db
def test_a_lago_refusal_is_502_and_ends_the_subscription_failed(api_client, fake_lago):
    owner = UserFactory()
    api_client.force_login(owner)
    fake_lago.fail_next("/api/v1/subscriptions", "POST", status=422)

    response = api_client.post(CREATE_URL, {"org_id": "ref-org", "plan_code": "starter"}, format="json")

    assert_error(response, 502, "billing_backend_rejected")
    sub = OrganizationSubscription.objects.get(org_id="ref-org")
    assert sub.status == "failed" and "refused" in sub.last_backend_error
    assert AuditEvent.objects.filter(action="subscription.failed", target_id=str(sub.pk)).count() == 1
    assert retry_pending_subscriptions.apply().get()["activated"] == []
    assert len(fake_lago.requests("POST", "/api/v1/subscriptions")) == 1  # never asked again
    # The organization may subscribe again.
    again = api_client.post(CREATE_URL, {"org_id": "ref-org", "plan_code": "starter"}, format="json")
    assert again.status_code == 201, again.content


@pytest.mark.django_db
def test_lago_429_is_still_a_503_to_retry(fake_lago):
    fake_lago.fail_next("/api/v1/subscriptions", "POST", status=429)

    with pytest.raises(ApplicationError) as caught:
        create_subscription(org_id="busy-org", plan_code="starter", owner=UserFactory())

    assert (caught.value.status_code, caught.value.code) == (503, "billing_backend_unavailable")
    assert OrganizationSubscription.objects.get(org_id="busy-org").status == "pending"


@pytest.mark.django_db
def test_the_retry_task_gives_up_after_the_attempt_cap(fake_lago, settings):
    settings.LAGO_MAX_ACTIVATION_ATTEMPTS = 2
    sub = pending_subscription(fake_lago, "capped-org")
    fake_lago.fail_next("/api/v1/subscriptions", "POST", status=500)
    assert retry_pending_subscriptions.apply().get()["still_pending"] == [sub.pk]

    result = retry_pending_subscriptions.apply().get()

    assert result == {"activated": [], "still_pending": [], "failed": [sub.pk]}
    sub.refresh_from_db()
    assert sub.status == "failed" and "gave up after 2 attempts" in sub.last_backend_error
    # Lago was told to terminate it, in case a lost answer had started it there.
    assert [r.path for r in fake_lago.requests("DELETE")] == [f"/api/v1/subscriptions/{sub.lago_external_id}"]
    assert len(fake_lago.requests("POST", "/api/v1/subscriptions")) == 2
    assert pool_total("capped-org") == 0


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_cancels_both_succeed_and_cancel_once(fake_lago, plans):
    change = create_subscription(org_id="cc-org", plan_code="starter", owner=UserFactory())
    fake_lago.delay_seconds = 0.3  # both Lago calls overlap

    results = run_concurrently(lambda _i: cancel_subscription(org_id="cc-org", actor_label="t"), 2)

    assert all(isinstance(r, OrganizationSubscription) for r in results), results
    assert {r.status for r in results} == {"canceled"}
    assert (
        OrgBillingHistory.objects.filter(
            external_id=f"subscription-{change.subscription.pk}-canceled"
        ).count()
        == 1
    )
    assert AuditEvent.objects.filter(action="subscription.canceled").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_plan_change_losing_to_a_cancel_is_409_and_leaves_lago_terminated(fake_lago, plans):
    change = create_subscription(org_id="race-org", plan_code="starter", owner=UserFactory())
    external_id = change.subscription.lago_external_id
    fake_lago.delay_seconds = 0.3

    def act(i: int):
        if i == 0:
            return cancel_subscription(org_id="race-org", actor_label="t")
        time.sleep(0.1)  # Lago terminates first, then gets the plan change (a re-subscribe)
        return change_subscription_plan(org_id="race-org", plan_code="professional", actor_label="t")

    canceled, changed = run_concurrently(act, 2)

    assert isinstance(canceled, OrganizationSubscription) and canceled.status == "canceled"
    assert isinstance(changed, Conflict), changed
    sub = OrganizationSubscription.objects.get(pk=change.subscription.pk)
    assert (sub.status, sub.plan.plan_code) == ("canceled", "starter")
    assert fake_lago.subscriptions[external_id]["status"] == "terminated"
    assert not AuditEvent.objects.filter(action="subscription.plan_changed").exists()


@pytest.mark.django_db(transaction=True)
def test_a_cancel_racing_a_plan_change_never_leaves_lago_live_behind_a_canceled_row(fake_lago, plans):
    change = create_subscription(org_id="race2-org", plan_code="starter", owner=UserFactory())
    external_id = change.subscription.lago_external_id
    fake_lago.delay_seconds = 0.3

    def act(i: int):
        if i == 0:
            return change_subscription_plan(org_id="race2-org", plan_code="professional", actor_label="t")
        time.sleep(0.1)
        return cancel_subscription(org_id="race2-org", actor_label="t")

    results = run_concurrently(act, 2)

    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)], results
    sub = OrganizationSubscription.objects.get(pk=change.subscription.pk)
    assert sub.status == "canceled"
    assert fake_lago.subscriptions[external_id]["status"] == "terminated"


@pytest.mark.django_db(transaction=True)
def test_a_cancel_whose_row_changed_during_its_lago_call_terminates_again(fake_lago, plans):
    change = create_subscription(org_id="race3-org", plan_code="starter", owner=UserFactory())
    external_id = change.subscription.lago_external_id
    # Lago terminates at once but answers late; meanwhile a plan change re-subscribes there
    # and commits here first.
    fake_lago.terminate_answer_delay = 0.5

    def act(i: int):
        if i == 0:
            return cancel_subscription(org_id="race3-org", actor_label="t")
        time.sleep(0.15)
        return change_subscription_plan(org_id="race3-org", plan_code="professional", actor_label="t")

    canceled, changed = run_concurrently(act, 2)

    assert isinstance(changed, OrganizationSubscription), changed
    assert isinstance(canceled, OrganizationSubscription) and canceled.status == "canceled"
    assert fake_lago.subscriptions[external_id]["status"] == "terminated"
    assert len(fake_lago.requests("DELETE")) == 2
