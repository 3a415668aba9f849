"""Subscription endpoints: create, read, change plan, cancel — roles, errors, bad input."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.backends.base import LocalSubscriptionBackend
from billing.errors import BillingBackendUnavailable
from billing.models import OrganizationCreditPool, OrganizationSubscription
from billing.services.subscriptions import create_subscription
from organizations.models import Organization, OrganizationMember
from organizations.services import add_member, create_organization
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.django_db

CREATE_URL = reverse("org-billing-subscription-create")


def detail_url(org_id: str) -> str:
    return reverse("org-billing-subscription-detail", args=[org_id])


def upgrade_url(org_id: str) -> str:
    return reverse("org-billing-subscription-upgrade", args=[org_id])


def cancel_url(org_id: str) -> str:
    return reverse("org-billing-subscription-cancel", args=[org_id])


@pytest.fixture
def subscribed():
    """An org on the starter plan with an admin, a member and an outsider."""
    admin = UserFactory()
    change = create_subscription(org_id="sub-org", plan_code="starter", owner=admin, org_name="Sub Org")
    member = UserFactory()
    add_member(org_id="sub-org", user=member)
    return change.org, admin, member, UserFactory()


# --- POST /subscriptions -------------------------------------------------------------------


def test_system_admin_creates_org_subscription_with_initial_credits_for_a_user(api_client, staff_user):
    owner = UserFactory(username="e2e-user-123")
    api_client.force_login(staff_user)

    response = api_client.post(
        CREATE_URL,
        {
            "org_id": "e2e-test-org",
            "plan_code": "professional",
            "org_name": "E2E Test Organization",
            "billing_email": "e2e@test.com",
            "initial_credits": 10000.0,
            "user_id": "e2e-user-123",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["subscription"]["org_id"] == "e2e-test-org"
    assert body["subscription"]["plan_code"] == "professional"
    assert body["subscription"]["plan_name"] == "Professional"
    assert body["subscription"]["status"] == "active"
    assert body["subscription"]["monthly_price"] == 49.0
    assert body["subscription"]["current_period_start"] and body["subscription"]["current_period_end"]
    assert body["organization"] == {
        "id": "e2e-test-org",
        "org_name": "E2E Test Organization",
        "slug": "e2e-test-org",
        "billing_email": "e2e@test.com",
    }
    assert body["credit_pool"] == {
        "org_id": "e2e-test-org",
        "total_credits": 10000.0,
        "allocated_credits": 0.0,
        "used_credits": 0.0,
        "available_credits": 10000.0,
    }
    assert OrganizationCreditPool.objects.get(org_id="e2e-test-org").total_credits == mc(10000)
    membership = OrganizationMember.objects.get(org_id="e2e-test-org", user=owner)
    assert membership.role == "admin"
    assert not OrganizationMember.objects.filter(org_id="e2e-test-org", user=staff_user).exists()


def test_user_subscribes_a_new_org_and_becomes_its_admin(api_client):
    user = UserFactory()
    api_client.force_login(user)

    response = api_client.post(
        CREATE_URL, {"org_id": "my-team", "plan_code": "starter", "user_id": user.username}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["organization"]["org_name"] == "my-team"
    assert body["credit_pool"]["total_credits"] == 0.0
    assert OrganizationMember.objects.get(org_id="my-team", user=user).role == "admin"


def test_an_org_a_user_creates_becomes_their_default(api_client):
    user = UserFactory()
    api_client.force_login(user)

    response = api_client.post(CREATE_URL, {"org_id": "mine", "plan_code": "starter"}, format="json")

    assert response.status_code == 201, response.content
    assert OrganizationMember.objects.get(org_id="mine", user=user).is_default


def test_an_org_staff_subscribes_for_a_user_does_not_change_who_pays_for_them(api_client, staff_user):
    owner = UserFactory()
    create_organization(org_id="theirs-already", org_name="Theirs", created_by=UserFactory())
    add_member(org_id="theirs-already", user=owner)
    api_client.force_login(owner)
    before = api_client.get("/api/v1/me").json()["billing_context"]
    api_client.force_login(staff_user)

    response = api_client.post(
        CREATE_URL, {"org_id": "for-them", "plan_code": "starter", "user_id": owner.username}, format="json"
    )

    assert response.status_code == 201, response.content
    membership = OrganizationMember.objects.get(org_id="for-them", user=owner)
    assert membership.role == "admin" and not membership.is_default
    api_client.force_login(owner)
    assert (
        api_client.get("/api/v1/me").json()["billing_context"]
        == before
        == {
            "org_id": "theirs-already",
            "source": before["source"],
            "can_bill": True,
            "refusal_code": None,
        }
    )


def test_org_admin_resubscribes_after_cancel(api_client, subscribed):
    org, admin, _, _ = subscribed
    api_client.force_login(admin)
    assert api_client.post(cancel_url(org.id), format="json").status_code == 200

    response = api_client.post(CREATE_URL, {"org_id": org.id, "plan_code": "enterprise"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["subscription"]["plan_code"] == "enterprise"


def test_non_staff_initial_credits_is_payment_required_and_writes_nothing(api_client):
    user = UserFactory()
    api_client.force_login(user)
    before = snapshot_balances()

    response = api_client.post(
        CREATE_URL, {"org_id": "free-money", "plan_code": "starter", "initial_credits": 100}, format="json"
    )

    assert_error(response, 402, "payment_required")
    assert snapshot_balances() == before
    assert not Organization.objects.filter(pk="free-money").exists()


def test_non_staff_naming_another_user_is_forbidden(api_client):
    user = UserFactory()
    other = UserFactory()
    api_client.force_login(user)

    response = api_client.post(
        CREATE_URL, {"org_id": "theirs", "plan_code": "starter", "user_id": other.username}, format="json"
    )

    assert_error(response, 403, "forbidden")
    assert not Organization.objects.filter(pk="theirs").exists()


def test_staff_naming_an_unknown_user_is_404(api_client, staff_user):
    api_client.force_login(staff_user)

    response = api_client.post(
        CREATE_URL, {"org_id": "ghost-org", "plan_code": "starter", "user_id": "nobody"}, format="json"
    )

    assert_error(response, 404, "user_not_found")
    assert not Organization.objects.filter(pk="ghost-org").exists()


def test_unknown_plan_is_400_and_creates_nothing(api_client):
    api_client.force_login(UserFactory())

    response = api_client.post(CREATE_URL, {"org_id": "new-org", "plan_code": "platinum"}, format="json")

    assert_error(response, 400, "unknown_plan")
    assert not Organization.objects.filter(pk="new-org").exists()


def test_duplicate_subscription_is_409(api_client, subscribed):
    org, admin, _, _ = subscribed
    api_client.force_login(admin)
    before = snapshot_balances()

    response = api_client.post(CREATE_URL, {"org_id": org.id, "plan_code": "enterprise"}, format="json")

    assert_error(response, 409, "duplicate_subscription")
    assert snapshot_balances() == before


def test_staff_duplicate_with_initial_credits_grants_nothing(api_client, staff_user, subscribed):
    org, *_ = subscribed
    api_client.force_login(staff_user)
    before = snapshot_balances()

    response = api_client.post(
        CREATE_URL, {"org_id": org.id, "plan_code": "enterprise", "initial_credits": 50}, format="json"
    )

    assert_error(response, 409, "duplicate_subscription")
    assert snapshot_balances() == before


def test_existing_org_member_cannot_subscribe_it(api_client, subscribed):
    org, _, member, _ = subscribed
    api_client.force_login(member)

    response = api_client.post(CREATE_URL, {"org_id": org.id, "plan_code": "starter"}, format="json")

    assert_error(response, 403, "forbidden")


def test_another_users_org_id_is_simply_taken(api_client, subscribed):
    org, _, _, outsider = subscribed
    api_client.force_login(outsider)
    before = snapshot_balances()

    response = api_client.post(CREATE_URL, {"org_id": org.id, "plan_code": "starter"}, format="json")

    error = assert_error(response, 409, "conflict")
    assert "subscription" not in error["message"].lower()
    assert snapshot_balances() == before


def test_create_requires_authentication(api_client):
    response = api_client.post(CREATE_URL, {"org_id": "anon-org", "plan_code": "starter"}, format="json")

    assert_error(response, 401, "unauthenticated")
    assert not Organization.objects.filter(pk="anon-org").exists()


def test_billing_backend_down_is_503_and_grants_nothing(api_client, staff_user, monkeypatch):
    def down(self, **kwargs):
        raise BillingBackendUnavailable()

    monkeypatch.setattr(LocalSubscriptionBackend, "start", down)
    api_client.force_login(staff_user)

    response = api_client.post(
        CREATE_URL, {"org_id": "down-org", "plan_code": "starter", "initial_credits": 10}, format="json"
    )

    assert_error(response, 503, "billing_backend_unavailable")
    assert OrganizationCreditPool.objects.get(org_id="down-org").total_credits == 0
    assert not OrganizationSubscription.objects.filter(org_id="down-org", status="active").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan_code": "starter"}, "org_id"),
        ({"org_id": "x-org"}, "plan_code"),
        ({"org_id": "bad id!", "plan_code": "starter"}, "org_id"),
        ({"org_id": "x" * 65, "plan_code": "starter"}, "org_id"),
        ({"org_id": 123, "plan_code": "starter"}, "org_id"),
        ({"org_id": "x-org", "plan_code": ["starter"]}, "plan_code"),
        ({"org_id": "x-org", "plan_code": "starter", "billing_email": "not-an-email"}, "billing_email"),
        ({"org_id": "x-org", "plan_code": "starter", "initial_credits": "100"}, "initial_credits"),
        ({"org_id": "x-org", "plan_code": "starter", "initial_credits": -5}, "initial_credits"),
        ({"org_id": "x-org", "plan_code": "starter", "initial_credits": 0}, "initial_credits"),
        (
            {"org_id": "x-org", "plan_code": "starter", "initial_credits": Decimal("1.0001")},
            "initial_credits",
        ),
        ({"org_id": "x-org", "plan_code": "starter", "initial_credits": 1e20}, "initial_credits"),
        ({"org_id": "x-org", "plan_code": "starter", "initial_credits": True}, "initial_credits"),
        ({"org_id": "x-org", "plan_code": "starter", "user_id": 42}, "user_id"),
        ({"org_id": "x-org", "plan_code": "starter", "plan": "pro"}, "plan"),
    ],
)
def test_bad_input_is_400_and_writes_nothing(api_client, staff_user, body, field):
    api_client.force_login(staff_user)
    before = snapshot_balances()

    response = api_client.post(CREATE_URL, body, format="json")

    error = assert_error(response, 400, "validation_error")
    assert field in error["details"]["fields"]
    assert snapshot_balances() == before
    assert not Organization.objects.filter(pk="x-org").exists()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"org_id": "x-org", "plan_code": "starter", "initial_credits": NaN}', "malformed_request"),
        ('{"org_id": "x-org", "plan_code": "starter", "initial_credits": Infinity}', "malformed_request"),
        ('{"org_id": "x-org", ', "malformed_request"),
        ('["x-org"]', "validation_error"),
    ],
)
def test_malformed_body_is_400(api_client, staff_user, raw, code):
    api_client.force_login(staff_user)

    response = api_client.generic("POST", CREATE_URL, raw, content_type="application/json")

    assert_error(response, 400, code)
    assert not Organization.objects.filter(pk="x-org").exists()


def test_create_with_idempotency_key_replays_and_creates_once(api_client, staff_user):
    api_client.force_login(staff_user)
    body = {"org_id": "idem-org", "plan_code": "starter", "initial_credits": 500}

    first = api_client.post(CREATE_URL, body, format="json", HTTP_IDEMPOTENCY_KEY="sub-1")
    second = api_client.post(CREATE_URL, body, format="json", HTTP_IDEMPOTENCY_KEY="sub-1")
    other = api_client.post(
        CREATE_URL, {**body, "plan_code": "enterprise"}, format="json", HTTP_IDEMPOTENCY_KEY="sub-1"
    )

    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert_error(other, 409, "idempotency_key_reused")
    assert OrganizationSubscription.objects.filter(org_id="idem-org").count() == 1
    assert OrganizationCreditPool.objects.get(org_id="idem-org").total_credits == mc(500)


# --- GET /subscriptions/{org_id} -----------------------------------------------------------


def test_org_admin_reads_subscription_and_plan(api_client, subscribed):
    org, admin, _, _ = subscribed
    api_client.force_login(admin)

    response = api_client.get(detail_url(org.id))

    assert response.status_code == 200
    body = response.json()
    assert body["subscription"]["org_id"] == org.id
    assert body["subscription"]["status"] == "active"
    assert body["plan"] == {
        "plan_code": "starter",
        "name": "Starter",
        "monthly_price": 19.0,
        "currency": "USD",
        "rate_limit_tier": "basic",
        "monthly_api_calls": 10000,
    }


def test_system_admin_reads_any_subscription(api_client, staff_user, subscribed):
    org, *_ = subscribed
    api_client.force_login(staff_user)

    assert api_client.get(detail_url(org.id)).status_code == 200


@pytest.mark.parametrize(
    ("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, "organization_not_found")]
)
def test_subscription_read_refused(api_client, subscribed, who, status, code):
    org, _, member, outsider = subscribed
    api_client.force_login({"member": member, "outsider": outsider}[who])

    assert_error(api_client.get(detail_url(org.id)), status, code)


def test_subscription_read_requires_authentication(api_client, subscribed):
    org, *_ = subscribed
    assert_error(api_client.get(detail_url(org.id)), 401, "unauthenticated")


def test_org_without_live_subscription_is_404(api_client):
    admin = UserFactory()
    org = OrganizationFactory(created_by=admin)
    api_client.force_login(admin)

    assert_error(api_client.get(detail_url(org.id)), 404, "subscription_not_found")


def test_unknown_org_is_404_even_for_staff(api_client, staff_user):
    api_client.force_login(staff_user)
    assert_error(api_client.get(detail_url("no-such-org")), 404, "organization_not_found")


# --- PUT /subscriptions/{org_id}/upgrade ---------------------------------------------------


def test_org_admin_changes_plan(api_client, subscribed):
    org, admin, _, _ = subscribed
    api_client.force_login(admin)

    response = api_client.put(upgrade_url(org.id), {"plan_code": "enterprise"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["subscription"]["plan_code"] == "enterprise"
    assert body["plan"]["monthly_price"] == 99.0
    assert OrganizationSubscription.objects.get(org=org, status="active").plan.plan_code == "enterprise"


def test_same_plan_is_409_plan_unchanged(api_client, subscribed):
    org, admin, _, _ = subscribed
    api_client.force_login(admin)
    before = snapshot_balances()

    response = api_client.put(upgrade_url(org.id), {"plan_code": "starter"}, format="json")

    assert_error(response, 409, "plan_unchanged")
    assert snapshot_balances() == before


def test_upgrade_to_unknown_plan_is_400(api_client, subscribed):
    org, admin, _, _ = subscribed
    api_client.force_login(admin)

    assert_error(
        api_client.put(upgrade_url(org.id), {"plan_code": "gold"}, format="json"), 400, "unknown_plan"
    )


@pytest.mark.parametrize(
    "body", [{}, {"plan_code": 3}, {"plan_code": "enterprise", "extra": 1}, {"plan_code": None}]
)
def test_upgrade_bad_input_is_400(api_client, subscribed, body):
    org, admin, _, _ = subscribed
    api_client.force_login(admin)
    before = snapshot_balances()

    assert_error(api_client.put(upgrade_url(org.id), body, format="json"), 400, "validation_error")
    assert snapshot_balances() == before


def test_upgrade_without_live_subscription_is_404(api_client):
    admin = UserFactory()
    org = OrganizationFactory(created_by=admin)
    api_client.force_login(admin)

    response = api_client.put(upgrade_url(org.id), {"plan_code": "enterprise"}, format="json")

    assert_error(response, 404, "subscription_not_found")


@pytest.mark.parametrize(
    ("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, "organization_not_found")]
)
def test_upgrade_refused(api_client, subscribed, who, status, code):
    org, _, member, outsider = subscribed
    api_client.force_login({"member": member, "outsider": outsider}[who])
    before = snapshot_balances()

    assert_error(
        api_client.put(upgrade_url(org.id), {"plan_code": "enterprise"}, format="json"), status, code
    )
    assert snapshot_balances() == before


def test_upgrade_requires_authentication(api_client, subscribed):
    org, *_ = subscribed
    response = api_client.put(upgrade_url(org.id), {"plan_code": "enterprise"}, format="json")
    assert_error(response, 401, "unauthenticated")


# --- POST /subscriptions/{org_id}/cancel ---------------------------------------------------


def test_org_admin_cancels_and_credits_stay(api_client, subscribed):
    org, admin, _, _ = subscribed
    api_client.force_login(admin)
    pool_before = OrganizationCreditPool.objects.get(org=org).total_credits

    response = api_client.post(cancel_url(org.id), format="json")

    assert response.status_code == 200, response.content
    assert response.json()["subscription"]["status"] == "canceled"
    assert response.json()["subscription"]["canceled_at"]
    assert OrganizationCreditPool.objects.get(org=org).total_credits == pool_before
    assert_error(api_client.get(detail_url(org.id)), 404, "subscription_not_found")
    assert_error(api_client.post(cancel_url(org.id), format="json"), 404, "subscription_not_found")


def test_staff_cancels_any_subscription(api_client, staff_user, subscribed):
    org, *_ = subscribed
    api_client.force_login(staff_user)

    assert api_client.post(cancel_url(org.id), format="json").status_code == 200


@pytest.mark.parametrize(
    ("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, "organization_not_found")]
)
def test_cancel_refused(api_client, subscribed, who, status, code):
    org, _, member, outsider = subscribed
    api_client.force_login({"member": member, "outsider": outsider}[who])

    assert_error(api_client.post(cancel_url(org.id), format="json"), status, code)
    assert OrganizationSubscription.objects.get(org=org).status == "active"


def test_cancel_requires_authentication(api_client, subscribed):
    org, *_ = subscribed
    assert_error(api_client.post(cancel_url(org.id), format="json"), 401, "unauthenticated")


def test_cancel_refuses_unknown_fields(api_client, subscribed):
    org, admin, _, _ = subscribed
    api_client.force_login(admin)

    assert_error(api_client.post(cancel_url(org.id), {"now": True}, format="json"), 400, "validation_error")
    assert OrganizationSubscription.objects.get(org=org).status == "active"


# --- throttling ----------------------------------------------------------------------------


def test_subscription_changes_have_their_own_hourly_limit(api_client, subscribed, settings):
    settings.API_RATE_LIMITS = {**settings.API_RATE_LIMITS, "subscription": "2/hour"}
    org, admin, _, _ = subscribed
    api_client.force_login(admin)

    first = api_client.put(upgrade_url(org.id), {"plan_code": "enterprise"}, format="json")
    second = api_client.put(upgrade_url(org.id), {"plan_code": "professional"}, format="json")
    third = api_client.put(upgrade_url(org.id), {"plan_code": "starter"}, format="json")

    assert first.status_code == second.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert second.headers["X-RateLimit-Remaining"] == "0"
    error = assert_error(third, 429, "rate_limited")
    assert int(third.headers["Retry-After"]) > 0
    assert error["details"]["retry_after_seconds"] > 0
    assert OrganizationSubscription.objects.get(org=org, status="active").plan.plan_code == "professional"
    # Reads are not subscription changes.
    assert api_client.get(detail_url(org.id)).status_code == 200
