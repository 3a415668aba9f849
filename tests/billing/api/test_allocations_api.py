"""Allocation endpoints: list, adjust, revoke, transfer — roles, refusals, bad input."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import UserCreditAllocation
from billing.services import allocate_credits_to_user, deduct_credits, reserve_credits, revoke_allocation
from organizations.services import add_member
from tests.factories import UserFactory
from tests.helpers import assert_error, mc, pool_of, snapshot_balances

pytestmark = pytest.mark.django_db


def list_url(org_id: str) -> str:
    return reverse("org-billing-allocations", args=[org_id])


def detail_url(org_id: str, user_id: str) -> str:
    return reverse("org-billing-allocation-detail", args=[org_id, user_id])


def transfer_url(org_id: str) -> str:
    return reverse("org-billing-credits-transfer", args=[org_id])


@pytest.fixture
def team(team):
    """The billing ``team`` (1,000 credits, ``member`` holding 100, an admin, an outsider), with
    30 of the member's credits used and a ``peer`` holding 200."""
    deduct_credits(org_id=team.org.id, user=team.member, amount=mc(30), request_id="used-30")
    team.peer = UserFactory()
    add_member(org_id=team.org.id, user=team.peer)
    team.peer_allocation = allocate_credits_to_user(
        org_id=team.org.id, user=team.peer, amount=mc(200)
    ).allocation
    return team


def refresh(allocation: UserCreditAllocation) -> UserCreditAllocation:
    return UserCreditAllocation.objects.get(pk=allocation.pk)


BAD_AMOUNTS = [
    pytest.param("10", id="string"),
    pytest.param(-5, id="negative"),
    pytest.param(Decimal("1.0001"), id="over-precise"),
    pytest.param(1e20, id="huge"),
    pytest.param(False, id="bool"),
    pytest.param(None, id="null"),
]


# --- GET /credits/{org_id}/allocations -----------------------------------------------------


def test_admin_lists_active_allocations(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.get(list_url(team.org.id))

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert body["next"] is None
    rows = {row["user_id"]: row for row in body["results"]}
    assert set(rows) == {team.member.username, team.peer.username}
    assert rows[team.member.username]["allocated_credits"] == 100.0
    assert rows[team.member.username]["used_credits"] == 30.0
    assert rows[team.member.username]["remaining_credits"] == 70.0


def test_revoked_allocations_only_with_include_inactive(api_client, team):
    revoke_allocation(org_id=team.org.id, user=team.peer)
    api_client.force_login(team.admin)

    active = api_client.get(list_url(team.org.id)).json()
    everything = api_client.get(list_url(team.org.id), {"include_inactive": "true"}).json()

    assert [row["user_id"] for row in active["results"]] == [team.member.username]
    assert everything["count"] == 2
    revoked = next(row for row in everything["results"] if row["user_id"] == team.peer.username)
    assert revoked["is_active"] is False
    assert revoked["revoked_at"]


def test_filter_by_user_id(api_client, team):
    api_client.force_login(team.admin)

    body = api_client.get(list_url(team.org.id), {"user_id": team.peer.username}).json()

    assert [row["user_id"] for row in body["results"]] == [team.peer.username]


def test_list_paginates(api_client, team):
    api_client.force_login(team.admin)

    first = api_client.get(list_url(team.org.id), {"page_size": 1}).json()
    second = api_client.get(list_url(team.org.id), {"page_size": 1, "page": 2}).json()

    assert first["count"] == 2
    assert len(first["results"]) == len(second["results"]) == 1
    assert first["next"] and second["previous"]
    assert first["results"][0]["id"] != second["results"][0]["id"]


def test_member_sees_only_their_own_allocation(api_client, team):
    api_client.force_login(team.member)

    body = api_client.get(list_url(team.org.id)).json()
    filtered = api_client.get(list_url(team.org.id), {"user_id": team.peer.username}).json()

    assert [row["user_id"] for row in body["results"]] == [team.member.username]
    assert filtered["count"] == 0


def test_staff_lists_any_org(api_client, staff_user, team):
    api_client.force_login(staff_user)
    assert api_client.get(list_url(team.org.id)).json()["count"] == 2


def test_list_is_invisible_to_outsiders(api_client, team):
    api_client.force_login(team.outsider)
    assert_error(api_client.get(list_url(team.org.id)), 404, "organization_not_found")


def test_list_requires_authentication(api_client, team):
    assert_error(api_client.get(list_url(team.org.id)), 401, "unauthenticated")


def test_list_never_shows_another_orgs_allocations(api_client, team, make_funded_member):
    make_funded_member(pool=50, allocation=5)
    api_client.force_login(team.admin)

    body = api_client.get(list_url(team.org.id), {"include_inactive": "true", "page_size": 500}).json()

    assert {row["org_id"] for row in body["results"]} == {team.org.id}


@pytest.mark.parametrize("params", [{"include_inactive": "maybe"}, {"page": "zero"}, {"page": 99}])
def test_list_bad_query_is_a_4xx_in_the_error_shape(api_client, team, params):
    api_client.force_login(team.admin)

    response = api_client.get(list_url(team.org.id), params)

    assert response.status_code in (400, 404)
    assert set(response.json()["error"]) == {"code", "message", "details"}


# --- PATCH /credits/{org_id}/allocations/{user_id} -----------------------------------------


def test_admin_raises_an_allocation(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.patch(
        detail_url(team.org.id, team.member.username), {"credits": 250}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["allocation"]["allocated_credits"] == 250.0
    assert body["allocation"]["remaining_credits"] == 220.0
    assert body["pool_updated"]["allocated_credits"] == 450.0
    assert body["pool_updated"]["available_credits"] == 550.0
    assert refresh(team.allocation).allocated_credits == mc(250)


def test_admin_lowers_an_allocation_down_to_its_usage(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.patch(detail_url(team.org.id, team.member.username), {"credits": 30}, format="json")

    assert response.status_code == 200
    assert response.json()["allocation"]["remaining_credits"] == 0.0
    assert pool_of(team.org).allocated_credits == mc(230)


def test_unused_allocation_may_be_set_to_zero(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.patch(detail_url(team.org.id, team.peer.username), {"credits": 0}, format="json")

    assert response.status_code == 200
    assert response.json()["allocation"]["allocated_credits"] == 0.0
    assert response.json()["allocation"]["is_active"] is True


def test_lowering_below_usage_is_409(api_client, team):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.patch(
        detail_url(team.org.id, team.member.username), {"credits": 29.999}, format="json"
    )

    assert_error(response, 409, "allocation_below_usage")
    assert snapshot_balances() == before


def test_raising_beyond_the_pool_is_409(api_client, team):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.patch(
        detail_url(team.org.id, team.member.username), {"credits": 800.001}, format="json"
    )

    assert_error(response, 409, "allocation_exceeds_pool")
    assert snapshot_balances() == before


def test_adjusting_without_an_allocation_is_402(api_client, team):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.patch(detail_url(team.org.id, team.admin.username), {"credits": 5}, format="json")

    assert_error(response, 402, "no_active_allocation")
    assert snapshot_balances() == before


def test_adjusting_an_unknown_user_is_404(api_client, team):
    api_client.force_login(team.admin)
    response = api_client.patch(detail_url(team.org.id, "nobody-here"), {"credits": 5}, format="json")
    assert_error(response, 404, "user_not_found")


@pytest.mark.parametrize(
    ("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, "organization_not_found")]
)
def test_adjust_refused(api_client, team, who, status, code):
    api_client.force_login(getattr(team, who))
    before = snapshot_balances()

    response = api_client.patch(
        detail_url(team.org.id, team.member.username), {"credits": 500}, format="json"
    )

    assert_error(response, status, code)
    assert snapshot_balances() == before


def test_adjust_requires_authentication(api_client, team):
    response = api_client.patch(detail_url(team.org.id, team.member.username), {"credits": 5}, format="json")
    assert_error(response, 401, "unauthenticated")


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_adjust_bad_amount_is_400(api_client, team, amount):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.patch(
        detail_url(team.org.id, team.member.username), {"credits": amount}, format="json"
    )

    error = assert_error(response, 400, "validation_error")
    assert "credits" in error["details"]["fields"]
    assert snapshot_balances() == before


@pytest.mark.parametrize("body", [{}, {"credits": 5, "delta": 1}, {"allocated_credits": 5}])
def test_adjust_bad_body_is_400(api_client, team, body):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    assert_error(
        api_client.patch(detail_url(team.org.id, team.member.username), body, format="json"),
        400,
        "validation_error",
    )
    assert snapshot_balances() == before


def test_adjust_malformed_json_is_400(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.generic(
        "PATCH",
        detail_url(team.org.id, team.member.username),
        '{"credits": NaN}',
        content_type="application/json",
    )

    assert_error(response, 400, "malformed_request")


# --- DELETE /credits/{org_id}/allocations/{user_id} ----------------------------------------


def test_admin_revokes_and_unused_credits_return(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.delete(detail_url(team.org.id, team.member.username))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["revoked"] is True
    assert body["returned_to_pool"] == 70.0
    assert body["allocation"]["is_active"] is False
    assert body["allocation"]["allocated_credits"] == 30.0
    assert body["allocation"]["remaining_credits"] == 0.0
    assert body["pool_updated"]["allocated_credits"] == 230.0
    assert body["pool_updated"]["available_credits"] == 770.0
    assert_error(
        api_client.delete(detail_url(team.org.id, team.member.username)), 402, "no_active_allocation"
    )


def test_revoking_with_credits_on_hold_is_409(api_client, team):
    reserve_credits(org_id=team.org.id, user=team.member, amount=mc(5), request_id="hold-1")
    api_client.force_login(team.admin)
    before = snapshot_balances()

    assert_error(
        api_client.delete(detail_url(team.org.id, team.member.username)), 409, "allocation_has_active_holds"
    )
    assert snapshot_balances() == before


def test_revoking_an_unknown_user_is_404(api_client, team):
    api_client.force_login(team.admin)
    assert_error(api_client.delete(detail_url(team.org.id, "nobody-here")), 404, "user_not_found")


@pytest.mark.parametrize(
    ("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, "organization_not_found")]
)
def test_revoke_refused(api_client, team, who, status, code):
    api_client.force_login(getattr(team, who))
    before = snapshot_balances()

    assert_error(api_client.delete(detail_url(team.org.id, team.peer.username)), status, code)
    assert snapshot_balances() == before


def test_revoke_requires_authentication(api_client, team):
    assert_error(api_client.delete(detail_url(team.org.id, team.peer.username)), 401, "unauthenticated")


def test_staff_revokes_in_any_org(api_client, staff_user, team):
    api_client.force_login(staff_user)
    assert api_client.delete(detail_url(team.org.id, team.peer.username)).json()["returned_to_pool"] == 200.0


# --- POST /credits/{org_id}/transfer -------------------------------------------------------


def test_admin_transfers_free_credits(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.post(
        transfer_url(team.org.id),
        {"from_user_id": team.member.username, "to_user_id": team.peer.username, "credits": 70},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["credits"] == 70.0
    assert body["from_allocation"]["user_id"] == team.member.username
    assert body["from_allocation"]["allocated_credits"] == 30.0
    assert body["from_allocation"]["remaining_credits"] == 0.0
    assert body["to_allocation"]["user_id"] == team.peer.username
    assert body["to_allocation"]["allocated_credits"] == 270.0
    assert pool_of(team.org).allocated_credits == mc(300)


def test_transfer_creates_the_targets_allocation(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.post(
        transfer_url(team.org.id),
        {"from_user_id": team.peer.username, "to_user_id": team.admin.username, "credits": 0.5},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["to_allocation"]["allocated_credits"] == 0.5
    assert response.json()["to_allocation"]["user_id"] == team.admin.username


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param(
            {"from": "member", "to": "member", "credits": 1}, 400, "invalid_transfer", id="same-user"
        ),
        pytest.param(
            {"from": "member", "to": "peer", "credits": 70.001}, 402, "insufficient_credits", id="too-much"
        ),
        pytest.param(
            {"from": "admin", "to": "peer", "credits": 1}, 402, "no_active_allocation", id="no-source"
        ),
        pytest.param({"from": "member", "to": "outsider", "credits": 1}, 404, "not_a_member", id="outsider"),
        pytest.param(
            {"from": "ghost", "to": "peer", "credits": 1}, 404, "user_not_found", id="unknown-source"
        ),
        pytest.param(
            {"from": "member", "to": "ghost", "credits": 1}, 404, "user_not_found", id="unknown-target"
        ),
    ],
)
def test_transfer_refusals_move_nothing(api_client, team, body, status, code):
    def user_id(role: str) -> str:
        return "ghost-user" if role == "ghost" else getattr(team, role).username

    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.post(
        transfer_url(team.org.id),
        {
            "from_user_id": user_id(body["from"]),
            "to_user_id": user_id(body["to"]),
            "credits": body["credits"],
        },
        format="json",
    )

    assert_error(response, status, code)
    assert snapshot_balances() == before


@pytest.mark.parametrize(
    ("who", "status", "code"), [("member", 403, "forbidden"), ("outsider", 404, "organization_not_found")]
)
def test_transfer_refused(api_client, team, who, status, code):
    api_client.force_login(getattr(team, who))
    before = snapshot_balances()

    response = api_client.post(
        transfer_url(team.org.id),
        {"from_user_id": team.peer.username, "to_user_id": team.member.username, "credits": 1},
        format="json",
    )

    assert_error(response, status, code)
    assert snapshot_balances() == before


def test_transfer_requires_authentication(api_client, team):
    response = api_client.post(
        transfer_url(team.org.id),
        {"from_user_id": team.peer.username, "to_user_id": team.member.username, "credits": 1},
        format="json",
    )
    assert_error(response, 401, "unauthenticated")


@pytest.mark.parametrize("amount", [*BAD_AMOUNTS, pytest.param(0, id="zero")])
def test_transfer_bad_amount_is_400(api_client, team, amount):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.post(
        transfer_url(team.org.id),
        {"from_user_id": team.peer.username, "to_user_id": team.member.username, "credits": amount},
        format="json",
    )

    error = assert_error(response, 400, "validation_error")
    assert "credits" in error["details"]["fields"]
    assert snapshot_balances() == before


@pytest.mark.parametrize(
    "body",
    [
        {"to_user_id": "a", "credits": 1},
        {"from_user_id": "a", "credits": 1},
        {"from_user_id": ["a"], "to_user_id": "b", "credits": 1},
        {"from_user_id": "a", "to_user_id": "b", "credits": 1, "note": "hi"},
    ],
)
def test_transfer_bad_body_is_400(api_client, team, body):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    assert_error(api_client.post(transfer_url(team.org.id), body, format="json"), 400, "validation_error")
    assert snapshot_balances() == before


def test_transfer_malformed_json_is_400(api_client, team):
    api_client.force_login(team.admin)
    response = api_client.generic("POST", transfer_url(team.org.id), "{,}", content_type="application/json")
    assert_error(response, 400, "malformed_request")


def test_transfer_replays_with_the_same_idempotency_key(api_client, team):
    api_client.force_login(team.admin)
    body = {"from_user_id": team.peer.username, "to_user_id": team.member.username, "credits": 10}

    first = api_client.post(transfer_url(team.org.id), body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    again = api_client.post(transfer_url(team.org.id), body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    other = api_client.post(
        transfer_url(team.org.id), {**body, "credits": 11}, format="json", HTTP_IDEMPOTENCY_KEY="t-1"
    )

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert_error(other, 409, "idempotency_key_reused")
    assert refresh(team.peer_allocation).allocated_credits == mc(190)
    assert refresh(team.allocation).allocated_credits == mc(110)
