"""Subscriptions through Lago: the REST endpoints with SUBSCRIPTION_BACKEND=lago, against a real
local Lago stand-in driven by lago-python-client; the bodies Lago receives are asserted."""

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.urls import reverse

from billing.models import AuditEvent, OrganizationCreditPool, OrganizationSubscription, OrgBillingHistory
from billing.services.subscriptions import create_subscription
from billing.tasks import retry_pending_subscriptions
from organizations.models import Organization
from tests.factories import UserFactory
from tests.fakes.lago import API_KEY
from tests.helpers import assert_error, mc

pytestmark = pytest.mark.django_db

CREATE_URL = reverse("org-billing-subscription-create")


def upgrade_url(org_id: str) -> str:
    return reverse("org-billing-subscription-upgrade", args=[org_id])


def cancel_url(org_id: str) -> str:
    return reverse("org-billing-subscription-cancel", args=[org_id])


def subscribe(api_client, user, org_id="lago-org", plan_code="professional", **extra):
    api_client.force_login(user)
    return api_client.post(CREATE_URL, {"org_id": org_id, "plan_code": plan_code, **extra}, format="json")


def test_create_upserts_the_customer_and_subscribes_in_lago(api_client, fake_lago):
    user = UserFactory(email="owner@example.test")

    response = subscribe(api_client, user, org_name="Lago Org", billing_email="billing@lago.test")

    assert response.status_code == 201, response.content
    sub = OrganizationSubscription.objects.get(org_id="lago-org")
    customer_call, sub_call = fake_lago.requests("POST")
    assert customer_call.path == "/api/v1/customers"
    assert customer_call.authorization == f"Bearer {API_KEY}"
    assert customer_call.body == {
        "customer": {
            "external_id": "lago-org",
            "name": "Lago Org",
            "email": "billing@lago.test",
            "currency": "USD",
        }
    }
    assert sub_call.path == "/api/v1/subscriptions"
    assert sub_call.body == {
        "subscription": {
            "external_customer_id": "lago-org",
            "plan_code": "professional",
            "external_id": f"lago-org-{sub.pk}",
            "name": "Professional",
            "billing_time": "calendar",
        }
    }
    lago_sub = fake_lago.subscriptions[f"lago-org-{sub.pk}"]
    assert sub.status == "active"
    assert sub.lago_subscription_id == lago_sub["lago_id"]
    assert sub.lago_external_id == f"lago-org-{sub.pk}"
    assert sub.current_period_start == datetime(2026, 1, 1, tzinfo=UTC)
    assert sub.current_period_end == datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
    assert Organization.objects.get(pk="lago-org").lago_customer_id == lago_sub["lago_customer_id"]
    assert response.json()["subscription"]["current_period_end"] == "2026-01-31T23:59:59Z"


def test_upgrade_resends_the_same_external_id_with_the_new_plan(api_client, fake_lago):
    user = UserFactory()
    assert subscribe(api_client, user, plan_code="starter").status_code == 201
    sub = OrganizationSubscription.objects.get(org_id="lago-org")

    response = api_client.put(upgrade_url("lago-org"), {"plan_code": "enterprise"}, format="json")

    assert response.status_code == 200, response.content
    change = fake_lago.requests("POST", "/api/v1/subscriptions")[-1]
    assert change.body == {
        "subscription": {
            "external_customer_id": "lago-org",
            "plan_code": "enterprise",
            "external_id": f"lago-org-{sub.pk}",
            "name": "Enterprise",
            "billing_time": "calendar",
        }
    }
    assert len(fake_lago.subscriptions) == 1
    assert fake_lago.subscriptions[f"lago-org-{sub.pk}"]["plan_code"] == "enterprise"
    sub.refresh_from_db()
    assert sub.plan.plan_code == "enterprise"


def test_cancel_terminates_the_subscription_in_lago(api_client, fake_lago):
    user = UserFactory()
    assert subscribe(api_client, user).status_code == 201
    sub = OrganizationSubscription.objects.get(org_id="lago-org")

    response = api_client.post(cancel_url("lago-org"), format="json")

    assert response.status_code == 200, response.content
    (terminate,) = fake_lago.requests("DELETE")
    assert terminate.path == f"/api/v1/subscriptions/lago-org-{sub.pk}"
    assert terminate.authorization == f"Bearer {API_KEY}"
    assert fake_lago.subscriptions[f"lago-org-{sub.pk}"]["status"] == "terminated"
    sub.refresh_from_db()
    assert sub.status == "canceled"


def test_cancel_of_a_subscription_lago_already_terminated_still_cancels(api_client, fake_lago):
    user = UserFactory()
    assert subscribe(api_client, user).status_code == 201
    fake_lago.subscriptions.clear()  # terminated and gone on Lago's side: it answers 404

    response = api_client.post(cancel_url("lago-org"), format="json")

    assert response.status_code == 200, response.content
    assert OrganizationSubscription.objects.get(org_id="lago-org").status == "canceled"


def test_lago_5xx_is_503_leaves_a_pending_row_and_the_retry_task_completes_it(
    api_client, staff_user, fake_lago
):
    owner = UserFactory(username="pending-owner")
    fake_lago.fail_next("/api/v1/subscriptions", "POST", status=500)

    response = subscribe(api_client, staff_user, initial_credits=250, user_id=owner.username)

    error = assert_error(response, 503, "billing_backend_unavailable")
    assert error["details"]["provider"] == "lago"
    sub = OrganizationSubscription.objects.get(org_id="lago-org")
    assert sub.status == "pending"
    assert sub.activation_attempts == 1
    assert "lago" in sub.last_backend_error
    assert OrganizationCreditPool.objects.get(org_id="lago-org").total_credits == 0
    assert not OrgBillingHistory.objects.filter(org_id="lago-org").exists()

    # when: the periodic task runs (eagerly, as in tests)
    result = retry_pending_subscriptions.apply().get()

    # then: the same subscription is started at Lago, once, and its initial credits are granted
    assert result == {"activated": [sub.pk], "still_pending": [], "failed": []}
    sub.refresh_from_db()
    assert sub.status == "active"
    assert sub.activation_attempts == 2
    assert sub.last_backend_error == ""
    creates = fake_lago.requests("POST", "/api/v1/subscriptions")
    assert [c.body["subscription"]["external_id"] for c in creates] == [f"lago-org-{sub.pk}"] * 2
    assert OrganizationCreditPool.objects.get(org_id="lago-org").total_credits == mc(250)
    # and: running it again changes nothing
    assert retry_pending_subscriptions.apply().get() == {"activated": [], "still_pending": [], "failed": []}
    assert OrganizationCreditPool.objects.get(org_id="lago-org").total_credits == mc(250)
    assert OrgBillingHistory.objects.filter(org_id="lago-org", event_type="credit_grant").count() == 1


def test_lago_timeout_is_503_and_the_retry_gets_the_subscription_lago_made(api_client, fake_lago, settings):
    settings.LAGO_TIMEOUT_SECONDS = 0.3
    fake_lago.delay_seconds = 1.0  # Lago answers, but too late: it may well have subscribed
    user = UserFactory()

    response = subscribe(api_client, user)

    assert_error(response, 503, "billing_backend_unavailable")
    sub = OrganizationSubscription.objects.get(org_id="lago-org")
    assert sub.status == "pending"

    fake_lago.delay_seconds = 0
    assert retry_pending_subscriptions.apply().get()["activated"] == [sub.pk]

    sub.refresh_from_db()
    assert sub.status == "active"
    # One subscription in Lago, not two: the retry sent the same external id.
    assert list(fake_lago.subscriptions) == [f"lago-org-{sub.pk}"]
    assert sub.lago_subscription_id == fake_lago.subscriptions[f"lago-org-{sub.pk}"]["lago_id"]


def test_lago_unreachable_is_503_and_the_retry_keeps_it_pending(api_client, fake_lago, settings):
    settings.LAGO_API_URL = "http://127.0.0.1:9/"  # nothing listens there
    user = UserFactory()

    assert_error(subscribe(api_client, user), 503, "billing_backend_unavailable")
    sub = OrganizationSubscription.objects.get(org_id="lago-org")

    assert retry_pending_subscriptions.apply().get() == {
        "activated": [],
        "still_pending": [sub.pk],
        "failed": [],
    }
    sub.refresh_from_db()
    assert (sub.status, sub.activation_attempts) == ("pending", 2)


def test_retrying_the_same_request_after_a_503_completes_it_instead_of_409(api_client, fake_lago):
    user = UserFactory()
    fake_lago.fail_next("/api/v1/customers", "POST", status=502)
    assert_error(subscribe(api_client, user), 503, "billing_backend_unavailable")

    response = subscribe(api_client, user)

    assert response.status_code == 201, response.content
    assert OrganizationSubscription.objects.get(org_id="lago-org").status == "active"
    assert len(fake_lago.subscriptions) == 1


def test_a_different_plan_while_one_is_pending_is_409(api_client, fake_lago):
    user = UserFactory()
    fake_lago.fail_next("/api/v1/subscriptions", "POST", status=500)
    assert_error(subscribe(api_client, user, plan_code="starter"), 503, "billing_backend_unavailable")

    assert_error(subscribe(api_client, user, plan_code="enterprise"), 409, "duplicate_subscription")


def test_upgrade_while_lago_is_down_is_503_and_changes_nothing(api_client, fake_lago):
    user = UserFactory()
    assert subscribe(api_client, user, plan_code="starter").status_code == 201
    audit_before = AuditEvent.objects.count()
    history_before = OrgBillingHistory.objects.count()
    fake_lago.fail_next("/api/v1/subscriptions", "POST", status=503)

    response = api_client.put(upgrade_url("lago-org"), {"plan_code": "enterprise"}, format="json")

    assert_error(response, 503, "billing_backend_unavailable")
    sub = OrganizationSubscription.objects.get(org_id="lago-org")
    assert (sub.status, sub.plan.plan_code) == ("active", "starter")
    assert (AuditEvent.objects.count(), OrgBillingHistory.objects.count()) == (audit_before, history_before)


def test_cancel_while_lago_is_down_is_503_and_the_subscription_stays_active(api_client, fake_lago):
    user = UserFactory()
    assert subscribe(api_client, user).status_code == 201
    fake_lago.fail_next(
        f"/api/v1/subscriptions/{OrganizationSubscription.objects.get().lago_external_id}", "DELETE"
    )

    assert_error(api_client.post(cancel_url("lago-org"), format="json"), 503, "billing_backend_unavailable")
    assert OrganizationSubscription.objects.get(org_id="lago-org").status == "active"


def test_a_malformed_lago_answer_is_503(api_client, fake_lago):
    fake_lago.server.expect_oneshot_request("/api/v1/customers", method="POST").respond_with_json(
        {"customer": {"external_id": "lago-org"}}  # no lago_id, no timestamps
    )

    assert_error(subscribe(api_client, UserFactory()), 503, "billing_backend_unavailable")
    assert OrganizationSubscription.objects.get(org_id="lago-org").status == "pending"


def test_lago_backend_without_url_or_key_is_503(api_client, fake_lago, settings):
    settings.LAGO_API_KEY = ""

    assert_error(subscribe(api_client, UserFactory()), 503, "billing_backend_unavailable")
    assert fake_lago.requests() == []


def test_service_level_create_through_lago_grants_initial_credits_once_live(fake_lago):
    owner = UserFactory()

    change = create_subscription(
        org_id="svc-org", plan_code="starter", owner=owner, initial_credits=mc(100), actor_label="test"
    )

    assert change.subscription.status == "active"
    assert change.pool.total_credits == mc(100)
    assert OrgBillingHistory.objects.filter(
        external_id=f"subscription-{change.subscription.pk}-started"
    ).exists()


def test_sync_lago_plans_creates_missing_plans_then_updates_them(fake_lago, capsys):
    call_command("sync_lago_plans")

    created = fake_lago.requests("POST", "/api/v1/plans")
    assert sorted(c.body["plan"]["code"] for c in created) == ["enterprise", "professional", "starter"]
    starter = next(c.body["plan"] for c in created if c.body["plan"]["code"] == "starter")
    assert starter["amount_cents"] == 1900
    assert starter["amount_currency"] == "USD"
    assert starter["interval"] == "monthly"
    assert starter["pay_in_advance"] is True
    assert "starter: created" in capsys.readouterr().out

    call_command("sync_lago_plans")

    assert len(fake_lago.requests("POST", "/api/v1/plans")) == 3  # nothing created the second time
    assert "starter: updated" in capsys.readouterr().out
