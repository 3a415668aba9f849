"""Credit request endpoints: asking, who sees and decides which request, the refusals, and the
e-mails each side gets."""

from types import SimpleNamespace

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import AuditEvent, CreditRequest, UserCreditAllocation
from billing.services import allocate_credits_to_user, create_department, revoke_allocation
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error, mc, pool_of, snapshot_balances

pytestmark = pytest.mark.django_db


def requests_url(org_id: str) -> str:
    return reverse("org-billing-credit-requests", args=[org_id])


def decide_url(org_id: str, request_id: int, decision: str) -> str:
    return reverse(f"org-billing-credit-request-{decision}", args=[org_id, request_id])


@pytest.fixture
def team(team):
    """The billing ``team`` (1,000 credits; ``member`` holds 100 outside departments) plus
    Engineering (budget 300) managed by ``eng_manager``, with ``engineer`` holding 50 of it, and
    Sales (200) managed by ``sales_manager`` with ``seller`` holding 40. Everyone has an e-mail."""
    for name in ("eng_manager", "sales_manager", "engineer", "seller"):
        user = UserFactory(email=f"{name}@team.test")
        add_member(org_id=team.org.id, user=user)
        setattr(team, name, user)
    team.admin.email = "admin@team.test"
    team.admin.save()
    team.member.email = "member@team.test"
    team.member.save()
    team.eng = create_department(
        org_id=team.org.id, name="Engineering", budget=mc(300), managers=[team.eng_manager]
    )
    team.sales = create_department(
        org_id=team.org.id, name="Sales", budget=mc(200), managers=[team.sales_manager]
    )
    allocate_credits_to_user(org_id=team.org.id, user=team.engineer, amount=mc(50), department_id=team.eng.pk)
    allocate_credits_to_user(org_id=team.org.id, user=team.seller, amount=mc(40), department_id=team.sales.pk)
    return team


def ask(api_client, team, user, credits=25, reason="Load test of the new bot") -> dict:
    api_client.force_login(user)
    response = api_client.post(
        requests_url(team.org.id), {"credits": credits, "reason": reason}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def allocated(org, user) -> int:
    return UserCreditAllocation.objects.get(org=org, user=user, is_active=True).allocated_credits


# --- asking ------------------------------------------------------------------------------------


def test_a_member_asks_and_gets_a_pending_request(api_client, team):
    body = ask(api_client, team, team.engineer, credits=12.5)

    assert body == {
        "request_id": body["request_id"],
        "org_id": team.org.id,
        "user_id": team.engineer.username,
        "credits": 12.5,
        "reason": "Load test of the new bot",
        "status": "pending",
        "department_id": team.eng.pk,
        "created_at": body["created_at"],
        "decided_by": None,
        "decided_at": None,
        "decision_note": "",
        "allocation_id": None,
    }
    assert AuditEvent.objects.filter(
        action="credit_request.created", target_id=str(body["request_id"])
    ).exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"credits": 0, "reason": "x"},
        {"credits": -5, "reason": "x"},
        {"credits": "10", "reason": "x"},
        {"credits": 1.0001, "reason": "x"},
        {"credits": 10},
        {"credits": 10, "reason": "   "},
        {"credits": 10, "reason": "x" * 501},
        {"credits": 10, "reason": "x", "user_id": "someone-else"},
        {"reason": "x"},
    ],
)
def test_bad_input_is_400_and_writes_nothing(api_client, team, payload):
    before = snapshot_balances()
    api_client.force_login(team.member)

    response = api_client.post(requests_url(team.org.id), payload, format="json")

    assert_error(response, 400, "validation_error")
    assert CreditRequest.objects.count() == 0
    assert snapshot_balances() == before


def test_a_second_pending_request_is_refused_until_the_first_is_settled(api_client, team):
    first = ask(api_client, team, team.member)

    response = api_client.post(requests_url(team.org.id), {"credits": 5, "reason": "more"}, format="json")
    error = assert_error(response, 409, "credit_request_already_open")
    assert error["details"]["request_id"] == first["request_id"]

    assert (
        api_client.post(decide_url(team.org.id, first["request_id"], "cancel")).json()["status"]
        == "cancelled"
    )
    ask(api_client, team, team.member, credits=5)
    assert CreditRequest.objects.filter(requester=team.member).count() == 2


def test_a_member_of_a_deactivated_org_cannot_ask_and_nothing_is_written(api_client, team):
    type(team.org).objects.filter(pk=team.org.pk).update(is_active=False)
    before = snapshot_balances()
    audited = AuditEvent.objects.count()
    api_client.force_login(team.member)

    response = api_client.post(requests_url(team.org.id), {"credits": 5, "reason": "x"}, format="json")

    assert_error(response, 403, "organization_inactive")
    assert CreditRequest.objects.count() == 0
    assert AuditEvent.objects.count() == audited
    assert snapshot_balances() == before


def test_an_outsider_cannot_ask_or_see_the_organization(api_client, team):
    api_client.force_login(team.outsider)

    assert_error(
        api_client.post(requests_url(team.org.id), {"credits": 5, "reason": "x"}, format="json"),
        404,
        "organization_not_found",
    )
    assert_error(api_client.get(requests_url(team.org.id)), 404, "organization_not_found")


# --- who sees what -----------------------------------------------------------------------------


def _ids(api_client, team, user, query: str = "") -> set[int]:
    api_client.force_login(user)
    response = api_client.get(requests_url(team.org.id) + query)
    assert response.status_code == 200, response.content
    return {r["request_id"] for r in response.json()["results"]}


def test_admins_see_all_managers_their_department_members_see_their_own(api_client, team):
    mine = ask(api_client, team, team.member)["request_id"]
    eng = ask(api_client, team, team.engineer)["request_id"]
    sales = ask(api_client, team, team.seller)["request_id"]
    manager_own = ask(api_client, team, team.eng_manager)["request_id"]
    other_org = OrganizationFactory()
    stranger = UserFactory()
    add_member(org_id=other_org.id, user=stranger)
    ask(api_client, SimpleNamespace(org=other_org), stranger)

    assert _ids(api_client, team, team.admin) == {mine, eng, sales, manager_own}
    assert _ids(api_client, team, team.eng_manager) == {eng, manager_own}
    assert _ids(api_client, team, team.sales_manager) == {sales}
    assert _ids(api_client, team, team.engineer) == {eng}
    assert _ids(api_client, team, team.member) == {mine}
    assert _ids(api_client, team, team.admin, "?status=pending") == {mine, eng, sales, manager_own}
    assert _ids(api_client, team, team.admin, "?status=approved") == set()
    assert_error(api_client.get(requests_url(team.org.id) + "?status=maybe"), 400, "validation_error")


# --- approving ---------------------------------------------------------------------------------


def test_an_admin_approves_and_the_allocation_grows_through_the_ledger(api_client, team):
    request_id = ask(api_client, team, team.member, credits=30)["request_id"]
    available = pool_of(team.org).available_credits
    mail.outbox.clear()
    api_client.force_login(team.admin)

    with_commit = api_client.post(
        decide_url(team.org.id, request_id, "approve"), {"note": "ok"}, format="json"
    )

    assert with_commit.status_code == 200, with_commit.content
    body = with_commit.json()
    allocation = UserCreditAllocation.objects.get(org=team.org, user=team.member, is_active=True)
    assert (body["status"], body["decided_by"], body["decision_note"]) == (
        "approved",
        team.admin.username,
        "ok",
    )
    assert body["allocation_id"] == allocation.pk and body["decided_at"]
    assert allocation.allocated_credits == mc(130)
    assert pool_of(team.org).available_credits == available - mc(30)
    audit = AuditEvent.objects.get(action="credit_request.approved")
    assert (audit.actor, audit.metadata["allocated_after"]) == (team.admin, mc(130))
    assert AuditEvent.objects.filter(action="allocation.increased", target_id=str(allocation.pk)).exists()


def test_an_approval_creates_an_allocation_for_a_member_without_one(api_client, team):
    newcomer = UserFactory()
    add_member(org_id=team.org.id, user=newcomer)
    request_id = ask(api_client, team, newcomer, credits=20)["request_id"]
    api_client.force_login(team.admin)

    body = api_client.post(decide_url(team.org.id, request_id, "approve")).json()

    allocation = UserCreditAllocation.objects.get(pk=body["allocation_id"])
    assert (allocation.user, allocation.allocated_credits, allocation.department_id) == (
        newcomer,
        mc(20),
        None,
    )


def test_nobody_approves_or_declines_their_own_request_not_even_an_admin(api_client, team):
    request_id = ask(api_client, team, team.admin, credits=10)["request_id"]
    before = snapshot_balances()

    assert_error(api_client.post(decide_url(team.org.id, request_id, "approve")), 403, "own_credit_request")
    assert_error(api_client.post(decide_url(team.org.id, request_id, "decline")), 403, "own_credit_request")

    assert CreditRequest.objects.get(pk=request_id).status == "pending"
    assert snapshot_balances() == before


def test_a_manager_approves_within_the_department_budget(api_client, team):
    request_id = ask(api_client, team, team.engineer, credits=100)["request_id"]
    api_client.force_login(team.eng_manager)

    body = api_client.post(decide_url(team.org.id, request_id, "approve")).json()

    assert body["status"] == "approved"
    assert allocated(team.org, team.engineer) == mc(150)
    team.eng.refresh_from_db()
    assert team.eng.allocated_credits == mc(150)


def test_a_manager_beyond_the_department_budget_is_409_and_nothing_moves(api_client, team):
    request_id = ask(api_client, team, team.engineer, credits=250.001)["request_id"]
    before = snapshot_balances()
    api_client.force_login(team.eng_manager)

    response = api_client.post(decide_url(team.org.id, request_id, "approve"))

    assert_error(response, 409, "allocation_exceeds_department_budget")
    assert snapshot_balances() == before
    assert CreditRequest.objects.get(pk=request_id).status == "pending"


def test_a_short_pool_is_the_existing_409(api_client, team):
    request_id = ask(api_client, team, team.member, credits=401)["request_id"]  # 400 free in the pool
    before = snapshot_balances()
    api_client.force_login(team.admin)

    assert_error(
        api_client.post(decide_url(team.org.id, request_id, "approve")), 409, "allocation_exceeds_pool"
    )
    assert snapshot_balances() == before


def test_a_manager_cannot_decide_other_departments_or_the_pools_requests(api_client, team):
    sales = ask(api_client, team, team.seller)["request_id"]
    pool = ask(api_client, team, team.member)["request_id"]
    api_client.force_login(team.eng_manager)

    for request_id in (sales, pool):
        for decision in ("approve", "decline"):
            assert_error(
                api_client.post(decide_url(team.org.id, request_id, decision)),
                404,
                "credit_request_not_found",
            )
    assert set(CreditRequest.objects.values_list("status", flat=True)) == {"pending"}


def test_a_manager_cannot_approve_once_the_member_moved_to_another_department(api_client, team):
    # given: the engineer asked while in Engineering, then was moved to Sales
    request_id = ask(api_client, team, team.engineer, credits=10)["request_id"]
    revoke_allocation(org_id=team.org.id, user=team.engineer)
    allocate_credits_to_user(
        org_id=team.org.id, user=team.engineer, amount=mc(5), department_id=team.sales.pk
    )
    before = snapshot_balances()
    api_client.force_login(team.eng_manager)

    # when: Engineering's manager (who still sees the request) approves
    response = api_client.post(decide_url(team.org.id, request_id, "approve"))

    # then: the raise would land in Sales, which they do not manage
    assert_error(response, 403, "department_access_denied")
    assert snapshot_balances() == before
    api_client.force_login(team.sales_manager)
    assert api_client.post(decide_url(team.org.id, request_id, "approve")).status_code == 404  # asked in Eng
    api_client.force_login(team.admin)
    assert api_client.post(decide_url(team.org.id, request_id, "approve")).json()["status"] == "approved"
    assert allocated(team.org, team.engineer) == mc(15)
    team.sales.refresh_from_db()
    assert team.sales.allocated_credits == mc(40) + mc(15)


def test_a_plain_member_cannot_decide_and_an_unknown_request_is_404(api_client, team):
    request_id = ask(api_client, team, team.engineer)["request_id"]
    api_client.force_login(team.member)
    assert_error(api_client.post(decide_url(team.org.id, request_id, "approve")), 403, "forbidden")

    api_client.force_login(team.admin)
    assert_error(api_client.post(decide_url(team.org.id, 999999, "approve")), 404, "credit_request_not_found")
    other = OrganizationFactory()
    add_member(org_id=other.id, user=team.admin, role="admin")
    assert_error(
        api_client.post(decide_url(other.id, request_id, "approve")), 404, "credit_request_not_found"
    )
    assert CreditRequest.objects.get(pk=request_id).status == "pending"


def test_a_decided_request_is_409_request_not_pending(api_client, team):
    request_id = ask(api_client, team, team.member, credits=10)["request_id"]
    api_client.force_login(team.admin)
    assert api_client.post(decide_url(team.org.id, request_id, "approve")).status_code == 200

    for decision in ("approve", "decline"):
        assert_error(
            api_client.post(decide_url(team.org.id, request_id, decision)), 409, "request_not_pending"
        )
    api_client.force_login(team.member)
    assert_error(api_client.post(decide_url(team.org.id, request_id, "cancel")), 409, "request_not_pending")
    assert allocated(team.org, team.member) == mc(110)


def test_a_bad_note_is_400_and_decides_nothing(api_client, team):
    request_id = ask(api_client, team, team.member)["request_id"]
    api_client.force_login(team.admin)

    for payload in ({"note": 5}, {"note": "x" * 501}, {"reason": "x"}):
        response = api_client.post(decide_url(team.org.id, request_id, "decline"), payload, format="json")
        assert_error(response, 400, "validation_error")
    assert CreditRequest.objects.get(pk=request_id).status == "pending"


# --- declining and cancelling ------------------------------------------------------------------


def test_a_decline_keeps_the_note_and_moves_no_credits(api_client, team):
    request_id = ask(api_client, team, team.seller)["request_id"]
    before = snapshot_balances()
    api_client.force_login(team.sales_manager)

    body = api_client.post(
        decide_url(team.org.id, request_id, "decline"), {"note": "Not this month."}, format="json"
    ).json()

    assert (body["status"], body["decision_note"], body["allocation_id"]) == (
        "declined",
        "Not this month.",
        None,
    )
    after = snapshot_balances()
    assert after.pop("audit") == before.pop("audit") + 1
    assert after == before


def test_only_the_requester_cancels_and_others_cannot_probe(api_client, team):
    request_id = ask(api_client, team, team.engineer)["request_id"]

    api_client.force_login(team.seller)
    assert_error(
        api_client.post(decide_url(team.org.id, request_id, "cancel")), 404, "credit_request_not_found"
    )
    api_client.force_login(team.admin)
    assert_error(
        api_client.post(decide_url(team.org.id, request_id, "cancel")), 403, "credit_request_not_yours"
    )
    api_client.force_login(team.engineer)
    assert api_client.post(decide_url(team.org.id, request_id, "cancel")).json()["status"] == "cancelled"


# --- e-mail ------------------------------------------------------------------------------------


def test_a_new_request_mails_the_admins_and_the_department_manager(
    api_client, team, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ask(api_client, team, team.engineer, credits=7)

    (message,) = mail.outbox
    assert sorted(message.to) == ["admin@team.test", "eng_manager@team.test"]
    assert team.engineer.username in message.subject and "7 credits" in message.subject
    assert "Load test of the new bot" in message.body


def test_the_requester_is_mailed_the_decision(api_client, team, django_capture_on_commit_callbacks):
    approved = ask(api_client, team, team.member, credits=3)["request_id"]
    declined = ask(api_client, team, team.engineer, credits=4)["request_id"]
    api_client.force_login(team.admin)

    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(decide_url(team.org.id, approved, "approve"))
        api_client.post(decide_url(team.org.id, declined, "decline"), {"note": "No budget."}, format="json")

    assert [(m.to, m.subject.rsplit(" ", 1)[-1]) for m in mail.outbox] == [
        (["member@team.test"], "approved"),
        (["engineer@team.test"], "declined"),
    ]
    assert "No budget." in mail.outbox[1].body


def test_a_refused_approval_mails_nobody(api_client, team, django_capture_on_commit_callbacks):
    request_id = ask(api_client, team, team.engineer, credits=1000)["request_id"]
    api_client.force_login(team.admin)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api_client.post(decide_url(team.org.id, request_id, "approve"))

    assert_error(response, 409, "allocation_exceeds_department_budget")
    assert callbacks == [] and mail.outbox == []
