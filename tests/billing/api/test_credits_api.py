"""Credit-pool endpoints: pool status, adding credits, allocating to members."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import OrgBillingHistory, UserCreditAllocation
from billing.services import deduct_credits
from organizations.services import add_member
from tests.factories import UserFactory
from tests.helpers import assert_error, mc, pool_of, snapshot_balances

pytestmark = pytest.mark.django_db


def pool_url(org_id: str) -> str:
    return reverse("org-billing-credit-pool", args=[org_id])


def add_url(org_id: str) -> str:
    return reverse("org-billing-credits-add", args=[org_id])


def allocate_url(org_id: str) -> str:
    return reverse("org-billing-credits-allocate", args=[org_id])


BAD_AMOUNTS = [
    pytest.param("100", id="string"),
    pytest.param(-5, id="negative"),
    pytest.param(0, id="zero"),
    pytest.param(Decimal("1.0001"), id="over-precise"),
    pytest.param(1e20, id="huge"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="null"),
    pytest.param([1], id="list"),
    pytest.param({"credits": 1}, id="object"),
]


# --- GET /credits/{org_id} -----------------------------------------------------------------


def test_member_sees_pool_and_own_allocation(api_client, team):
    deduct_credits(org_id=team.org.id, user=team.member, amount=mc("25.5"), request_id="r-1")
    api_client.force_login(team.member)

    response = api_client.get(pool_url(team.org.id))

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("org_id", "total_credits", "allocated_credits", "used_credits")} == {
        "org_id": team.org.id,
        "total_credits": 1000.0,
        "allocated_credits": 100.0,
        "used_credits": 25.5,
    }
    assert body["available_credits"] == 900.0
    assert body["utilization_percent"] == 2.55
    mine = body["my_allocation"]
    assert mine["user_id"] == team.member.username
    assert mine["allocated_credits"] == 100.0
    assert mine["used_credits"] == 25.5
    assert mine["remaining_credits"] == 74.5
    assert mine["is_active"] is True


def test_admin_without_allocation_sees_null_my_allocation(api_client, team):
    api_client.force_login(team.admin)

    body = api_client.get(pool_url(team.org.id)).json()

    assert body["my_allocation"] is None
    assert body["utilization_percent"] == 0.0


def test_staff_sees_any_pool(api_client, staff_user, team):
    api_client.force_login(staff_user)

    response = api_client.get(pool_url(team.org.id))

    assert response.status_code == 200
    assert response.json()["total_credits"] == 1000.0


def test_pool_is_invisible_to_outsiders_and_unknown_ids(api_client, team):
    api_client.force_login(team.outsider)

    assert_error(api_client.get(pool_url(team.org.id)), 404, "organization_not_found")
    assert_error(api_client.get(pool_url("no-such-org")), 404, "organization_not_found")


def test_pool_requires_authentication(api_client, team):
    assert_error(api_client.get(pool_url(team.org.id)), 401, "unauthenticated")


def test_suspended_member_no_longer_sees_the_pool(api_client, team):
    team.org.members.filter(user=team.member).update(status="suspended")
    api_client.force_login(team.member)

    assert_error(api_client.get(pool_url(team.org.id)), 404, "organization_not_found")


# --- POST /credits/{org_id}/add ------------------------------------------------------------


def test_system_admin_grants_credits(api_client, staff_user, team):
    api_client.force_login(staff_user)

    response = api_client.post(add_url(team.org.id), {"credits": 500}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["credits_added"] == 500.0
    assert body["purchase_amount"] is None
    assert body["credit_pool"]["total_credits"] == 1500.0
    assert body["credit_pool"]["available_credits"] == 1400.0
    history = OrgBillingHistory.objects.get(pk=body["history_id"])
    assert history.event_type == "credit_grant"
    assert history.credits == mc(500)
    assert pool_of(team.org).total_credits == mc(1500)


def test_system_admin_records_a_purchase(api_client, staff_user, team):
    api_client.force_login(staff_user)

    response = api_client.post(
        add_url(team.org.id),
        {"credits": 5000.0, "purchase_amount": 50.0, "description": "Invoice 42"},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["purchase_amount"] == 50.0
    history = OrgBillingHistory.objects.get(pk=body["history_id"])
    assert history.event_type == "credit_purchase"
    assert history.amount == Decimal("50.00")
    assert history.description == "Invoice 42"


def test_fractional_credits_are_exact(api_client, staff_user, team):
    api_client.force_login(staff_user)

    response = api_client.post(add_url(team.org.id), {"credits": Decimal("0.001")}, format="json")

    assert response.status_code == 200
    assert pool_of(team.org).total_credits == mc(1000) + 1
    assert response.json()["credit_pool"]["total_credits"] == 1000.001


def test_org_admin_gets_payments_not_configured(api_client, team):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.post(add_url(team.org.id), {"credits": 500}, format="json")

    assert_error(response, 503, "payments_not_configured")
    assert snapshot_balances() == before


@pytest.mark.parametrize(
    ("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, "organization_not_found")]
)
def test_add_refused(api_client, team, who, status, code):
    api_client.force_login(getattr(team, who))
    before = snapshot_balances()

    assert_error(api_client.post(add_url(team.org.id), {"credits": 500}, format="json"), status, code)
    assert snapshot_balances() == before


def test_add_requires_authentication(api_client, team):
    before = snapshot_balances()
    assert_error(
        api_client.post(add_url(team.org.id), {"credits": 500}, format="json"), 401, "unauthenticated"
    )
    assert snapshot_balances() == before


def test_add_to_unknown_org_is_404(api_client, staff_user):
    api_client.force_login(staff_user)
    response = api_client.post(add_url("no-such-org"), {"credits": 1}, format="json")
    assert_error(response, 404, "organization_not_found")


def test_add_to_deactivated_org_is_refused(api_client, staff_user, team):
    type(team.org).objects.filter(pk=team.org.pk).update(is_active=False)
    api_client.force_login(staff_user)
    before = snapshot_balances()

    assert_error(
        api_client.post(add_url(team.org.id), {"credits": 1}, format="json"), 403, "organization_inactive"
    )
    assert snapshot_balances() == before


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_add_bad_amount_is_400_and_writes_nothing(api_client, staff_user, team, amount):
    api_client.force_login(staff_user)
    before = snapshot_balances()

    response = api_client.post(add_url(team.org.id), {"credits": amount}, format="json")

    error = assert_error(response, 400, "validation_error")
    assert "credits" in error["details"]["fields"]
    assert snapshot_balances() == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing"),
        pytest.param({"credits": 5, "purchase_amount": Decimal("1.005")}, id="usd-over-precise"),
        pytest.param({"credits": 5, "purchase_amount": -1}, id="usd-negative"),
        pytest.param({"credits": 5, "purchase_amount": "5"}, id="usd-string"),
        pytest.param({"credits": 5, "description": 7}, id="description-type"),
        pytest.param({"credits": 5, "bonus": 5}, id="unknown-field"),
    ],
)
def test_add_bad_body_is_400(api_client, staff_user, team, body):
    api_client.force_login(staff_user)
    before = snapshot_balances()

    assert_error(api_client.post(add_url(team.org.id), body, format="json"), 400, "validation_error")
    assert snapshot_balances() == before


@pytest.mark.parametrize(
    "raw",
    ['{"credits": NaN}', '{"credits": -Infinity}', '{"credits": ', "credits=5"],
)
def test_add_malformed_json_is_400(api_client, staff_user, team, raw):
    api_client.force_login(staff_user)
    before = snapshot_balances()

    response = api_client.generic("POST", add_url(team.org.id), raw, content_type="application/json")

    assert_error(response, 400, "malformed_request")
    assert snapshot_balances() == before


def test_add_replays_with_the_same_idempotency_key(api_client, staff_user, team):
    api_client.force_login(staff_user)

    first = api_client.post(
        add_url(team.org.id), {"credits": 10}, format="json", HTTP_IDEMPOTENCY_KEY="add-1"
    )
    again = api_client.post(
        add_url(team.org.id), {"credits": 10}, format="json", HTTP_IDEMPOTENCY_KEY="add-1"
    )
    other = api_client.post(
        add_url(team.org.id), {"credits": 11}, format="json", HTTP_IDEMPOTENCY_KEY="add-1"
    )

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_error(other, 409, "idempotency_key_reused")
    assert pool_of(team.org).total_credits == mc(1010)


# --- POST /credits/{org_id}/allocate -------------------------------------------------------


def test_admin_allocates_to_a_member(api_client, team):
    newcomer = UserFactory()
    add_member(org_id=team.org.id, user=newcomer)
    api_client.force_login(team.admin)

    response = api_client.post(
        allocate_url(team.org.id), {"user_id": newcomer.username, "credits": 2000.0 / 4}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    allocation = body["allocation"]
    assert allocation["user_id"] == newcomer.username
    assert allocation["org_id"] == team.org.id
    assert allocation["allocated_credits"] == 500.0
    assert allocation["used_credits"] == 0.0
    assert allocation["reserved_credits"] == 0.0
    assert allocation["remaining_credits"] == 500.0
    assert allocation["is_active"] is True
    assert allocation["allocated_by"] == team.admin.username
    assert body["pool_updated"] == {
        "org_id": team.org.id,
        "total_credits": 1000.0,
        "allocated_credits": 600.0,
        "used_credits": 0.0,
        "available_credits": 400.0,
    }


def test_reference_journey_allocation_fields(api_client, staff_user):
    """The developer guide's test: a 5,000-credit pool, 2,000 allocated → 3,000 available."""
    owner = UserFactory(username="test-user-api")
    api_client.force_login(staff_user)
    api_client.post(
        reverse("org-billing-subscription-create"),
        {
            "org_id": "test-api-org",
            "plan_code": "professional",
            "initial_credits": 5000.0,
            "user_id": owner.username,
        },
        format="json",
    )

    response = api_client.post(
        allocate_url("test-api-org"), {"user_id": "test-user-api", "credits": 2000.0}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["allocation"]["allocated_credits"] == 2000.0
    assert response.json()["pool_updated"]["available_credits"] == 3000.0


def test_allocating_again_raises_the_allocation_and_sets_expiry(api_client, team):
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    api_client.force_login(team.admin)

    response = api_client.post(
        allocate_url(team.org.id),
        {"user_id": team.member.username, "credits": 50, "expires_at": expires.isoformat()},
        format="json",
    )

    assert response.status_code == 200, response.content
    allocation = response.json()["allocation"]
    assert allocation["id"] == team.allocation.id
    assert allocation["allocated_credits"] == 150.0
    assert UserCreditAllocation.objects.get(pk=team.allocation.pk).expires_at == expires


def test_staff_allocates_in_any_org(api_client, staff_user, team):
    api_client.force_login(staff_user)
    response = api_client.post(
        allocate_url(team.org.id), {"user_id": team.member.username, "credits": 1}, format="json"
    )
    assert response.status_code == 200


def test_allocation_beyond_the_pool_is_409(api_client, team):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.post(
        allocate_url(team.org.id), {"user_id": team.member.username, "credits": 900.001}, format="json"
    )

    assert_error(response, 409, "allocation_exceeds_pool")
    assert snapshot_balances() == before


def test_allocating_the_whole_remainder_is_allowed(api_client, team):
    api_client.force_login(team.admin)
    response = api_client.post(
        allocate_url(team.org.id), {"user_id": team.member.username, "credits": 900}, format="json"
    )
    assert response.json()["pool_updated"]["available_credits"] == 0.0


@pytest.mark.parametrize(
    ("user_id", "code"),
    [("nobody-at-all", "user_not_found"), ("outsider", "not_a_member")],
)
def test_allocating_to_unknown_or_non_member_is_404(api_client, team, user_id, code):
    if user_id == "outsider":
        user_id = team.outsider.username
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.post(allocate_url(team.org.id), {"user_id": user_id, "credits": 1}, format="json")

    assert_error(response, 404, code)
    assert snapshot_balances() == before


@pytest.mark.parametrize(
    ("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, "organization_not_found")]
)
def test_allocate_refused(api_client, team, who, status, code):
    api_client.force_login(getattr(team, who))
    before = snapshot_balances()

    response = api_client.post(
        allocate_url(team.org.id), {"user_id": team.member.username, "credits": 1}, format="json"
    )

    assert_error(response, status, code)
    assert snapshot_balances() == before


def test_allocate_requires_authentication(api_client, team):
    response = api_client.post(
        allocate_url(team.org.id), {"user_id": team.member.username, "credits": 1}, format="json"
    )
    assert_error(response, 401, "unauthenticated")


def test_allocate_in_unknown_org_is_404(api_client, staff_user, team):
    api_client.force_login(staff_user)
    response = api_client.post(
        allocate_url("no-such-org"), {"user_id": team.member.username, "credits": 1}, format="json"
    )
    assert_error(response, 404, "organization_not_found")


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_allocate_bad_amount_is_400(api_client, team, amount):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.post(
        allocate_url(team.org.id), {"user_id": team.member.username, "credits": amount}, format="json"
    )

    error = assert_error(response, 400, "validation_error")
    assert "credits" in error["details"]["fields"]
    assert snapshot_balances() == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"credits": 1}, id="no-user"),
        pytest.param({"user_id": 17, "credits": 1}, id="user-type"),
        pytest.param({"user_id": "u", "credits": 1, "expires_at": "next week"}, id="expiry-text"),
        pytest.param({"user_id": "u", "credits": 1, "expires_at": 1700000000}, id="expiry-number"),
        pytest.param({"user_id": "u", "credits": 1, "expires_at": "2001-01-01T00:00:00Z"}, id="expiry-past"),
        pytest.param({"user_id": "u", "credits": 1, "org_id": "other"}, id="unknown-field"),
    ],
)
def test_allocate_bad_body_is_400(api_client, team, body):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    assert_error(api_client.post(allocate_url(team.org.id), body, format="json"), 400, "validation_error")
    assert snapshot_balances() == before


@pytest.mark.parametrize("raw", ['{"user_id": "x", "credits": NaN}', "{not json", "[]"])
def test_allocate_malformed_body_is_400(api_client, team, raw):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.generic("POST", allocate_url(team.org.id), raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"malformed_request", "validation_error"}
    assert snapshot_balances() == before


def test_allocate_replays_with_the_same_idempotency_key(api_client, team):
    api_client.force_login(team.admin)
    body = {"user_id": team.member.username, "credits": 10}

    first = api_client.post(allocate_url(team.org.id), body, format="json", HTTP_IDEMPOTENCY_KEY="alloc-1")
    again = api_client.post(allocate_url(team.org.id), body, format="json", HTTP_IDEMPOTENCY_KEY="alloc-1")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert UserCreditAllocation.objects.get(pk=team.allocation.pk).allocated_credits == mc(110)
