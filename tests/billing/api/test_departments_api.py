"""Department endpoints and department managers on the allocation endpoints: roles, refusals,
cross-org isolation, bad input."""

import pytest
from django.urls import reverse

from billing.models import Department, UserCreditAllocation
from billing.services import allocate_credits_to_user, create_department
from organizations.services import add_member
from tests.factories import UserFactory
from tests.helpers import assert_error, mc, pool_of, snapshot_balances

pytestmark = pytest.mark.django_db


def departments_url(org_id: str) -> str:
    return reverse("org-billing-departments", args=[org_id])


def department_url(org_id: str, department_id: int) -> str:
    return reverse("org-billing-department-detail", args=[org_id, department_id])


def allocate_url(org_id: str) -> str:
    return reverse("org-billing-credits-allocate", args=[org_id])


def allocation_url(org_id: str, user_id: str) -> str:
    return reverse("org-billing-allocation-detail", args=[org_id, user_id])


@pytest.fixture
def team(team):
    """The billing ``team`` (1,000 credits, 100 with ``member``) plus Engineering (300) managed
    by ``eng_manager`` and Sales (200) managed by ``sales_manager``; ``engineer`` holds 50 of
    Engineering's budget, ``seller`` 40 of Sales'."""
    for name in ("eng_manager", "sales_manager", "engineer", "seller"):
        user = UserFactory()
        add_member(org_id=team.org.id, user=user)
        setattr(team, name, user)
    team.eng = create_department(
        org_id=team.org.id, name="Engineering", budget=mc(300), managers=[team.eng_manager]
    )
    team.sales = create_department(
        org_id=team.org.id, name="Sales", budget=mc(200), managers=[team.sales_manager]
    )
    allocate_credits_to_user(org_id=team.org.id, user=team.engineer, amount=mc(50), department_id=team.eng.pk)
    allocate_credits_to_user(org_id=team.org.id, user=team.seller, amount=mc(40), department_id=team.sales.pk)
    return team


# --- /departments ---------------------------------------------------------------------------


def test_admin_creates_a_department_carved_from_the_pool(api_client, team):
    newcomer = UserFactory()
    add_member(org_id=team.org.id, user=newcomer)
    api_client.force_login(team.admin)

    response = api_client.post(
        departments_url(team.org.id),
        {"name": "Support", "budget_credits": 150.5, "managers": [newcomer.username]},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "department_id": body["department_id"],
        "name": "Support",
        "budget_credits": 150.5,
        "allocated_credits": 0.0,
        "used_credits": 0.0,
        "managers": [newcomer.username],
    }
    assert pool_of(team.org).available_credits == mc(1000) - mc(100) - mc(500) - mc("150.5")


def test_admin_lists_every_department_with_its_figures(api_client, team):
    api_client.force_login(team.admin)

    body = api_client.get(departments_url(team.org.id)).json()

    rows = {row["name"]: row for row in body["results"]}
    assert set(rows) == {"Engineering", "Sales"}
    assert rows["Engineering"]["allocated_credits"] == 50.0
    assert rows["Engineering"]["managers"] == [team.eng_manager.username]


def test_a_manager_lists_only_their_departments_and_a_member_none(api_client, team):
    api_client.force_login(team.eng_manager)
    mine = api_client.get(departments_url(team.org.id)).json()
    api_client.force_login(team.member)
    none = api_client.get(departments_url(team.org.id)).json()

    assert [row["name"] for row in mine["results"]] == ["Engineering"]
    assert none["count"] == 0


def test_a_manager_cannot_create_or_resize_departments(api_client, team):
    api_client.force_login(team.eng_manager)

    assert_error(
        api_client.post(departments_url(team.org.id), {"name": "X", "budget_credits": 1}, format="json"),
        403,
        "forbidden",
    )
    assert_error(
        api_client.patch(department_url(team.org.id, team.eng.pk), {"budget_credits": 900}, format="json"),
        403,
        "forbidden",
    )
    assert Department.objects.get(pk=team.eng.pk).budget_credits == mc(300)


def test_shrinking_below_allocated_is_409_and_changes_nothing(api_client, team):
    api_client.force_login(team.admin)
    before = snapshot_balances()

    response = api_client.patch(
        department_url(team.org.id, team.eng.pk), {"budget_credits": 49}, format="json"
    )

    assert_error(response, 409, "department_budget_below_allocated")
    assert snapshot_balances() == before


def test_admin_resizes_renames_and_restaffs(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.patch(
        department_url(team.org.id, team.eng.pk),
        {"name": "R&D", "budget_credits": 250, "managers": [team.member.username]},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["managers"] == [team.member.username]
    assert response.json()["budget_credits"] == 250.0
    assert pool_of(team.org).allocated_credits == mc(100) + mc(250) + mc(200)


def test_delete_with_live_allocations_is_409_then_works_once_revoked(api_client, team):
    api_client.force_login(team.admin)

    assert_error(
        api_client.delete(department_url(team.org.id, team.sales.pk)), 409, "department_has_allocations"
    )
    api_client.delete(allocation_url(team.org.id, team.seller.username))
    response = api_client.delete(department_url(team.org.id, team.sales.pk))

    assert response.status_code == 200, response.content
    assert response.json() == {"deleted": True, "department_id": team.sales.pk, "returned_to_pool": 200.0}
    assert pool_of(team.org).allocated_credits == mc(100) + mc(300)


def test_a_manager_who_is_not_a_member_is_refused(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.post(
        departments_url(team.org.id),
        {"name": "Support", "budget_credits": 1, "managers": [team.outsider.username]},
        format="json",
    )

    assert_error(response, 404, "not_a_member")
    assert not Department.objects.filter(name="Support").exists()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "budget_credits": 1},
        {"name": "X"},
        {"name": "X", "budget_credits": -1},
        {"name": "X", "budget_credits": 1, "managers": "someone"},
        {"name": "X", "budget_credits": 1, "color": "red"},
    ],
)
def test_bad_department_input_is_400(api_client, team, body):
    api_client.force_login(team.admin)
    response = api_client.post(departments_url(team.org.id), body, format="json")
    assert response.status_code == 400, response.content


def test_departments_of_another_org_are_invisible(api_client, team, make_funded_member):
    other_org, _, _ = make_funded_member(pool=100, allocation=1)
    foreign = create_department(org_id=other_org.id, name="Eng", budget=mc(10))
    api_client.force_login(team.admin)

    assert_error(api_client.get(departments_url(other_org.id)), 404, "organization_not_found")
    assert_error(
        api_client.patch(department_url(team.org.id, foreign.pk), {"budget_credits": 0}, format="json"),
        404,
        "department_not_found",
    )
    assert_error(api_client.delete(department_url(team.org.id, foreign.pk)), 404, "department_not_found")
    assert Department.objects.get(pk=foreign.pk).deleted_at is None


# --- department managers on the allocation endpoints --------------------------------------------


def test_a_manager_allocates_inside_their_budget(api_client, team):
    newcomer = UserFactory()
    add_member(org_id=team.org.id, user=newcomer)
    api_client.force_login(team.eng_manager)

    response = api_client.post(
        allocate_url(team.org.id),
        {"user_id": newcomer.username, "credits": 250, "department_id": team.eng.pk},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["allocation"]["department_id"] == team.eng.pk
    assert Department.objects.get(pk=team.eng.pk).allocated_credits == mc(300)


def test_a_manager_beyond_their_budget_is_409(api_client, team):
    newcomer = UserFactory()
    add_member(org_id=team.org.id, user=newcomer)
    api_client.force_login(team.eng_manager)
    before = snapshot_balances()

    response = api_client.post(
        allocate_url(team.org.id),
        {"user_id": newcomer.username, "credits": 250.001, "department_id": team.eng.pk},
        format="json",
    )

    assert_error(response, 409, "allocation_exceeds_department_budget")
    assert snapshot_balances() == before


@pytest.mark.parametrize("department", ["sales", None])
def test_a_manager_on_another_department_or_the_pool_is_403(api_client, team, department):
    api_client.force_login(team.eng_manager)
    body = {"user_id": team.member.username, "credits": 1}
    if department:
        body["department_id"] = getattr(team, department).pk
    before = snapshot_balances()

    assert_error(
        api_client.post(allocate_url(team.org.id), body, format="json"), 403, "department_access_denied"
    )
    assert snapshot_balances() == before


def test_a_manager_adjusts_and_revokes_only_in_their_department(api_client, team):
    api_client.force_login(team.eng_manager)

    adjusted = api_client.patch(
        allocation_url(team.org.id, team.engineer.username), {"credits": 80}, format="json"
    )
    other = api_client.patch(allocation_url(team.org.id, team.seller.username), {"credits": 1}, format="json")
    pool_member = api_client.delete(allocation_url(team.org.id, team.member.username))
    revoked = api_client.delete(allocation_url(team.org.id, team.engineer.username))

    assert adjusted.status_code == 200, adjusted.content
    assert_error(other, 403, "department_access_denied")
    assert_error(pool_member, 403, "department_access_denied")
    assert revoked.status_code == 200, revoked.content
    assert Department.objects.get(pk=team.eng.pk).allocated_credits == 0
    assert UserCreditAllocation.objects.get(user=team.seller, is_active=True).allocated_credits == mc(40)


def test_a_manager_transfers_inside_their_department_only(api_client, team):
    newcomer = UserFactory()
    add_member(org_id=team.org.id, user=newcomer)
    api_client.force_login(team.eng_manager)
    url = reverse("org-billing-credits-transfer", args=[team.org.id])

    inside = api_client.post(
        url,
        {"from_user_id": team.engineer.username, "to_user_id": newcomer.username, "credits": 10},
        format="json",
    )
    to_sales = api_client.post(
        url,
        {"from_user_id": team.engineer.username, "to_user_id": team.seller.username, "credits": 1},
        format="json",
    )
    from_sales = api_client.post(
        url,
        {"from_user_id": team.seller.username, "to_user_id": newcomer.username, "credits": 1},
        format="json",
    )

    assert inside.status_code == 200, inside.content
    assert inside.json()["to_allocation"]["department_id"] == team.eng.pk
    assert_error(to_sales, 409, "allocation_in_other_department")
    assert_error(from_sales, 403, "department_access_denied")


def test_a_plain_member_is_still_refused_allocation_writes(api_client, team):
    api_client.force_login(team.member)

    response = api_client.post(
        allocate_url(team.org.id),
        {"user_id": team.member.username, "credits": 1, "department_id": team.eng.pk},
        format="json",
    )

    assert_error(response, 403, "forbidden")


def test_a_plain_member_cannot_probe_user_ids_through_allocation_writes(api_client, team):
    api_client.force_login(team.member)
    transfer = reverse("org-billing-credits-transfer", args=[team.org.id])

    adjust = api_client.patch(allocation_url(team.org.id, "no-such-user"), {"credits": 1}, format="json")
    revoke = api_client.delete(allocation_url(team.org.id, "no-such-user"))
    moved = api_client.post(
        transfer, {"from_user_id": "no-such-user", "to_user_id": "x", "credits": 1}, format="json"
    )

    for response in (adjust, revoke, moved):
        assert_error(response, 403, "forbidden")


def test_a_manager_naming_an_unknown_department_is_404(api_client, team, make_funded_member):
    other_org, _, _ = make_funded_member(pool=100, allocation=1)
    foreign = create_department(org_id=other_org.id, name="Eng", budget=mc(10))
    api_client.force_login(team.eng_manager)

    response = api_client.post(
        allocate_url(team.org.id),
        {"user_id": team.member.username, "credits": 1, "department_id": foreign.pk},
        format="json",
    )

    assert_error(response, 404, "department_not_found")


def test_a_manager_sees_their_departments_allocations(api_client, team):
    api_client.force_login(team.eng_manager)

    body = api_client.get(reverse("org-billing-allocations", args=[team.org.id])).json()

    assert {row["user_id"] for row in body["results"]} == {team.engineer.username}
