"""POST /api/v1/org-billing/charges: an external gateway (a LiteLLM proxy) bills its calls."""

import pytest

from billing.models import CreditUsageAttribution, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import add_individual_credits
from organizations.services import add_member
from tests.billing.gateway.conftest import MODEL, api_key
from tests.billing.gateway.test_chat import expected_cost
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.usefixtures("model_price")
URL = "/api/v1/org-billing/charges"


def charge(client, body):
    return client.post(URL, body, format="json")


@pytest.fixture
def service(api_client, make_funded_member):
    """An org with a funded member, and its admin's service key holding the charge scope."""
    org, member, allocation = make_funded_member(pool=100, allocation=10)
    admin = UserFactory()
    add_member(org_id=org.id, user=admin, role="admin", actor_label="test")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key(admin, scopes=['charge'])}")
    return api_client, org, member, allocation


def test_tokens_are_charged_at_the_models_price(service):
    client, org, member, allocation = service
    body = {"user_id": member.username, "model": MODEL, "input_tokens": 1200, "output_tokens": 300,
            "request_id": "litellm-1"}  # fmt: skip

    response = charge(client, body)

    assert response.status_code == 201, response.content
    cost = expected_cost(1200, 300)
    assert response.json() == {
        "request_id": "litellm-1",
        "user_id": member.username,
        "org_id": org.id,
        "credits_charged": cost / 1000,
        "remaining_credits": (mc(10) - cost) / 1000,
        "attribution_id": CreditUsageAttribution.objects.get().pk,
        "replayed": False,
    }
    row = CreditUsageAttribution.objects.get()
    assert (row.service_name, row.input_tokens, row.output_tokens, row.credits_used) == (
        MODEL,
        1200,
        300,
        cost,
    )
    assert row.request_metadata["price"]["model"] == MODEL
    assert find_all_drifts() == []


def test_a_retry_with_the_same_request_id_charges_once(service):
    client, _, _, allocation = service
    body = {"user_id": service[2].username, "credits": 1.5, "request_id": "litellm-2"}

    first = charge(client, body)
    again = charge(client, body)
    other_amount = charge(client, {**body, "credits": 2})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert again.json()["attribution_id"] == first.json()["attribution_id"]
    assert_error(other_amount, 409, "request_id_conflict")
    allocation.refresh_from_db()
    assert allocation.used_credits == mc("1.5")


def test_zero_cost_call_is_attributed_at_zero(service):
    client, _, member, allocation = service

    body = {"user_id": member.username, "credits": 0, "model": "byok-model", "service_type": "byok"}
    response = charge(client, {**body, "request_id": "litellm-3"})

    assert response.status_code == 201, response.content
    row = CreditUsageAttribution.objects.get()
    assert (row.credits_used, row.service_type) == (0, "byok")
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (0, 0)


def test_refusals_change_nothing(service):
    client, org, member, _ = service
    outsider = UserFactory()
    before = snapshot_balances()

    too_much = charge(client, {"user_id": member.username, "credits": 11, "request_id": "r1"})
    unknown_user = charge(client, {"user_id": "nobody", "credits": 1, "request_id": "r2"})
    not_member = charge(
        client, {"user_id": outsider.username, "org_id": org.id, "credits": 1, "request_id": "r3"}
    )
    unknown_model = charge(
        client, {"user_id": member.username, "model": "nope", "input_tokens": 5, "request_id": "r4"}
    )
    nothing = charge(client, {"user_id": member.username, "model": MODEL, "request_id": "r5"})
    string_tokens = charge(
        client, {"user_id": member.username, "model": MODEL, "input_tokens": "5", "request_id": "r6"}
    )
    unknown_field = charge(client, {"user_id": member.username, "credits": 1, "request_id": "r7", "cost": 1})
    over_precise = charge(client, {"user_id": member.username, "credits": "1.0001", "request_id": "r8"})

    assert_error(too_much, 402, "insufficient_credits")
    assert_error(unknown_user, 404, "user_not_found")
    assert_error(not_member, 404, "not_a_member")
    assert_error(unknown_model, 400, "unknown_model")
    assert_error(nothing, 400, "validation_error")
    assert_error(string_tokens, 400, "validation_error")
    assert_error(unknown_field, 400, "validation_error")
    assert_error(over_precise, 400, "validation_error")
    assert snapshot_balances() == before


def test_member_without_allocation_is_402_no_allocation(service):
    client, org, _, _ = service
    bare = UserFactory()
    add_member(org_id=org.id, user=bare, actor_label="test")

    response = charge(client, {"user_id": bare.username, "credits": 1, "request_id": "r"})

    assert_error(response, 402, "no_allocation")


def test_only_a_service_key_with_the_charge_scope_may_charge(api_client, service):
    _, org, member, _ = service
    admin = org.members.get(role="admin").user
    body = {"user_id": member.username, "credits": 1, "request_id": "x"}
    api_client.credentials()

    anonymous = charge(api_client, body)
    api_client.force_login(admin)
    session = charge(api_client, body)
    api_client.logout()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key(admin)}")  # read + write, no charge
    write_key = charge(api_client, body)

    assert_error(anonymous, 401, "unauthenticated")
    assert_error(session, 403, "forbidden")
    assert_error(write_key, 403, "forbidden")
    assert UserCreditAllocation.objects.get(user=member).used_credits == 0


def test_a_plain_members_key_cannot_charge_colleagues(api_client, service):
    _, org, member, _ = service
    colleague = UserFactory()
    add_member(org_id=org.id, user=colleague, actor_label="test")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key(colleague, scopes=['charge'])}")

    response = charge(api_client, {"user_id": member.username, "credits": 1, "request_id": "x"})

    assert_error(response, 403, "forbidden")


def test_another_orgs_admin_cannot_charge_our_members(api_client, service):
    _, org, member, _ = service
    other = OrganizationFactory()
    other_admin = UserFactory()
    add_member(org_id=other.id, user=other_admin, role="admin", actor_label="test")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key(other_admin, scopes=['charge'])}")

    named = charge(
        api_client, {"user_id": member.username, "org_id": org.id, "credits": 1, "request_id": "x"}
    )
    default = charge(api_client, {"user_id": member.username, "credits": 1, "request_id": "y"})

    assert_error(named, 404, "organization_not_found")
    assert_error(default, 404, "organization_not_found")


def test_individual_credits_only_by_a_system_admin(api_client, db):
    user = UserFactory()
    add_individual_credits(user=user, amount=mc(5), actor_label="test")
    ops = UserFactory(is_staff=True)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key(ops, scopes=['charge'])}")

    response = charge(api_client, {"user_id": user.username, "credits": 1, "request_id": "i"})

    assert response.status_code == 201, response.content
    assert response.json()["org_id"] is None
    assert CreditUsageAttribution.objects.get().org_id is None
