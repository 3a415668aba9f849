"""``/portal/orgs/<org_id>/``: members see the pool and their own credits; admins allocate and
transfer through the API's services; another org is the 404 page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import UserCreditAllocation
from billing.services import add_credits_to_pool, allocate_credits_to_user, deduct_credits
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, pool_of

pytestmark = pytest.mark.django_db


def _allocated(org, username: str) -> int:
    allocation = UserCreditAllocation.objects.filter(org=org, user__username=username, is_active=True).first()
    return allocation.allocated_credits if allocation else 0


def test_a_member_sees_the_pool_and_their_credits_but_no_admin_controls(client: Client, acme) -> None:
    org, _, member = acme
    client.force_login(member)

    response = client.get("/portal/orgs/acme/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "100 credits left of 100" in body
    assert 'id="pool-available">900' in body
    assert ">Allocate</button>" not in body
    assert "Transfer credits" not in body
    assert 'id="members"' not in body


def test_another_orgs_page_is_the_404_page(client: Client, acme) -> None:
    OrganizationFactory(id="globex")
    client.force_login(acme[2])

    response = client.get("/portal/orgs/globex/")

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_an_admin_allocates_with_the_credits_input_and_the_api_agrees(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)
    assert 'aria-label="Allocate credits to mia"' in client.get("/portal/orgs/acme/").content.decode()

    response = client.post("/portal/orgs/acme/allocate", {"user_id": "mia", "credits": "250.5"})

    assert response.status_code == 302
    assert _allocated(org, "mia") == mc("350.5")
    api = client.get("/api/v1/org-billing/credits/acme/allocations").json()["results"]
    assert {a["user_id"]: a["allocated_credits"] for a in api}["mia"] == 350.5


def test_allocating_more_than_the_pool_is_refused_next_to_the_input(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/allocate", {"user_id": "mia", "credits": "5000"})

    assert response.status_code == 409
    body = response.content.decode()
    row = body[body.index('data-user-id="mia"') :]
    row = row[: row.index("</tr>")]
    assert 'aria-invalid="true"' in row
    assert 'class="field-error"' in row
    assert _allocated(org, "mia") == mc(100)
    assert pool_of(org).allocated_credits == mc(100)


def test_a_credit_amount_that_is_not_a_number_is_refused_in_the_api_words(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/allocate", {"user_id": "mia", "credits": "lots"})

    assert response.status_code == 400
    assert "A credit amount is a JSON number with at most 3 decimals." in response.content.decode()
    assert _allocated(org, "mia") == mc(100)


def test_a_member_cannot_allocate(client: Client, acme) -> None:
    org, _, member = acme
    client.force_login(member)

    response = client.post("/portal/orgs/acme/allocate", {"user_id": "mia", "credits": "10"})

    assert response.status_code == 403
    assert "Only organization admins can do this." in response.content.decode()
    assert _allocated(org, "mia") == mc(100)


def test_an_admin_transfers_between_members(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post(
        "/portal/orgs/acme/transfer", {"from_user_id": "mia", "to_user_id": "boss", "credits": "40"}
    )

    assert response.status_code == 302
    assert (_allocated(org, "mia"), _allocated(org, "boss")) == (mc(60), mc(40))


def test_a_transfer_beyond_the_free_credits_keeps_the_dialog_open_with_the_message(
    client: Client, acme
) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    response = client.post(
        "/portal/orgs/acme/transfer", {"from_user_id": "mia", "to_user_id": "boss", "credits": "400"}
    )

    assert response.status_code in (402, 409)
    body = response.content.decode()
    dialog = body[body.index('<dialog id="transfer-dialog"') :]
    assert dialog.startswith('<dialog id="transfer-dialog" aria-labelledby="transfer-heading" open>')
    assert 'class="field-error"' in dialog[: dialog.index("</dialog>")]
    assert (_allocated(org, "mia"), _allocated(org, "boss")) == (mc(100), 0)


def test_the_admin_page_runs_a_bounded_number_of_queries(
    client: Client, acme, django_assert_max_num_queries
) -> None:
    org, admin, _ = acme
    for n in range(40):
        user = UserFactory(username=f"m{n:02d}")
        add_member(org_id=org.id, user=user, actor_label="test")
        allocate_credits_to_user(org_id=org.id, user=user, amount=mc(5), actor_label="test")
    client.force_login(admin)

    for days in (3, 30):  # grants are read in one query, however many
        add_credits_to_pool(
            org_id=org.id, amount=mc(10), actor_label="test", expires_at=timezone.now() + timedelta(days=days)
        )

    # + the pool history, + departments and pending requests, + the credit grants (issue 14 §8)
    with django_assert_max_num_queries(28):
        response = client.get("/portal/orgs/acme/")

    assert response.content.decode().count('class="allocate-form"') == 42


def test_the_admin_page_exports_usage_as_csv_through_the_api(client: Client, acme) -> None:
    org, admin, member = acme
    deduct_credits(user=member, org_id=org.id, amount=mc(7), request_id="csv", service_name="gpt")
    client.force_login(admin)
    body = client.get("/portal/orgs/acme/").content.decode()
    form = body[body.index('<form method="get" action="') :]
    action = form[len('<form method="get" action="') : form.index('"', len('<form method="get" action="'))]
    assert action == "/api/v1/org-billing/usage/acme/by-user"

    export = client.get(action, {"format": "csv", "granularity": "day"})

    assert export.status_code == 200
    assert export["Content-Type"].startswith("text/csv")
    assert "mia" in export.content.decode()


def test_the_members_table_pages_and_filters(client: Client, acme) -> None:
    org, admin, _ = acme
    for n in range(105):
        add_member(org_id=org.id, user=UserFactory(username=f"dev-{n:03d}"), actor_label="test")
    client.force_login(admin)

    first = client.get("/portal/orgs/acme/").content.decode()
    second = client.get("/portal/orgs/acme/", {"page": "2"}).content.decode()
    found = client.get("/portal/orgs/acme/", {"q": "dev-10"}).content.decode()

    assert "Members 1 to 100 of 107." in first
    assert 'href="?page=2" rel="next"' in first
    assert "Members 101 to 107 of 107." in second
    assert second.count('<tr data-user-id="') == 7
    assert "Members 1 to 5 of 5 matching" in found  # dev-100 to dev-104
    assert found.count('<tr data-user-id="dev-10') == 5


def test_an_admin_revokes_an_allocation_and_its_unused_credits_return_to_the_pool(
    client: Client, acme
) -> None:
    org, admin, member = acme
    deduct_credits(user=member, org_id=org.id, amount=mc(30), request_id="used", service_name="m")
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/revoke", {"user_id": "mia"})

    assert response.status_code == 302
    assert not UserCreditAllocation.objects.filter(org=org, user=member, is_active=True).exists()
    assert pool_of(org).allocated_credits == mc(30)  # what mia used stays allocated


def test_a_member_cannot_revoke(client: Client, acme) -> None:
    org, _, member = acme
    client.force_login(member)

    response = client.post("/portal/orgs/acme/revoke", {"user_id": "mia"})

    assert response.status_code == 403
    assert _allocated(org, "mia") == mc(100)
