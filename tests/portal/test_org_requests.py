"""The org page's departments and credit requests (billing/portal/org_requests.py): members ask
and cancel, admins and department managers approve or decline through the API's services and
rules, admins create, rename and resize departments; refusals are shown on the page."""

import re

import pytest
from django.core import mail
from django.test import Client

from billing.models import CreditRequest, Department, UserCreditAllocation
from billing.services import allocate_credits_to_user, create_department
from billing.services.credit_requests import request_credits
from organizations.services import add_member
from tests.factories import UserFactory
from tests.helpers import mc, pool_of, snapshot_balances

pytestmark = pytest.mark.django_db

PAGE = "/portal/orgs/acme/"


@pytest.fixture
def eng(acme):
    """Engineering (budget 300 of acme's pool) managed by "erin", with "ed" holding 50 of it."""
    org, _, _ = acme
    manager, engineer = UserFactory(username="erin"), UserFactory(username="ed", email="ed@acme.test")
    for user in (manager, engineer):
        add_member(org_id=org.id, user=user, actor_label="test")
    department = create_department(org_id=org.id, name="Engineering", budget=mc(300), managers=[manager])
    allocate_credits_to_user(org_id=org.id, user=engineer, amount=mc(50), department_id=department.pk)
    return department, manager, engineer


def _allocated(org, user) -> int:
    return UserCreditAllocation.objects.get(org=org, user=user, is_active=True).allocated_credits


def _row(body: str, attribute: str) -> str:
    row = body[body.index(attribute) :]
    return row[: row.index("</tr>")]


# --- a member asks -----------------------------------------------------------------------------


def test_a_member_asks_on_the_page_and_sees_the_request(client: Client, acme) -> None:
    org, _, member = acme
    client.force_login(member)
    assert 'id="ask-credits"' in client.get(PAGE).content.decode()

    response = client.post(f"{PAGE}requests", {"credits": "40.5", "reason": "Batch eval"})

    assert response.status_code == 302
    request = CreditRequest.objects.get(requester=member)
    assert (request.credits, request.reason, request.status) == (mc("40.5"), "Batch eval", "pending")
    body = client.get(PAGE).content.decode()
    assert "Batch eval" not in _row(body, f'data-request-id="{request.pk}"')  # own table: no reason column
    assert "40.5" in _row(body, f'data-request-id="{request.pk}"') and "Pending" in body
    assert 'id="pending-requests"' not in body  # a member decides nothing


def test_a_bad_request_is_refused_next_to_the_field_and_writes_nothing(client: Client, acme) -> None:
    _, _, member = acme
    client.force_login(member)

    response = client.post(f"{PAGE}requests", {"credits": "-3", "reason": ""})

    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="ask-credits-error"' in body and 'id="ask-reason-error"' in body
    assert body.count('class="field-error"') == 2  # shown once, next to the fields
    assert not CreditRequest.objects.exists()


def test_a_member_cancels_their_pending_request(client: Client, acme) -> None:
    org, _, member = acme
    request = request_credits(org_id=org.id, requester=member, credits=mc(5), reason="x")
    client.force_login(member)

    response = client.post(f"{PAGE}requests/cancel", {"request_id": str(request.pk)})

    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == "cancelled"


# --- admins and managers decide ----------------------------------------------------------------


def test_an_admin_sees_departments_with_bars_and_pending_requests(client: Client, acme, eng) -> None:
    org, admin, member = acme
    department, _, engineer = eng
    request = request_credits(org_id=org.id, requester=engineer, credits=mc(20), reason="Fine-tuning run")
    client.force_login(admin)

    body = client.get(PAGE).content.decode()

    row = _row(body, f'data-department-id="{department.pk}"')
    assert "Engineering" in row and ">300<" in row and ">50<" in row
    assert '<meter min="0" max="100" value="0"' in row
    pending = _row(body, f'data-request-id="{request.pk}"')
    assert "Fine-tuning run" in pending and ">Approve</button>" in pending and ">Decline</button>" in pending
    assert 'name="csrfmiddlewaretoken"' in pending


def test_an_admin_approves_on_the_page_and_the_requester_is_mailed(
    client: Client, acme, eng, django_capture_on_commit_callbacks
) -> None:
    org, admin, _ = acme
    _, _, engineer = eng
    request = request_credits(org_id=org.id, requester=engineer, credits=mc(20), reason="x")
    client.force_login(admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{PAGE}requests/approve", {"request_id": str(request.pk), "note": "Enjoy"})

    assert response.status_code == 302
    assert _allocated(org, engineer) == mc(70)
    (message,) = mail.outbox
    assert message.to == ["ed@acme.test"] and "Enjoy" in message.body


def test_a_manager_approves_within_the_budget_and_is_refused_beyond_it(client: Client, acme, eng) -> None:
    org, _, _ = acme
    department, manager, engineer = eng
    small = request_credits(org_id=org.id, requester=engineer, credits=mc(200), reason="x")
    client.force_login(manager)
    body = client.get(PAGE).content.decode()
    assert f'data-department-id="{department.pk}"' in body and f'data-request-id="{small.pk}"' in body
    assert "Save" not in _row(body, f'data-department-id="{department.pk}"')  # managers do not edit

    assert client.post(f"{PAGE}requests/approve", {"request_id": str(small.pk)}).status_code == 302
    assert _allocated(org, engineer) == mc(250)

    big = request_credits(org_id=org.id, requester=engineer, credits=mc(51), reason="more")
    before = snapshot_balances()
    response = client.post(f"{PAGE}requests/approve", {"request_id": str(big.pk)})

    assert response.status_code == 409
    body = response.content.decode()
    assert (
        f"Request {big.pk}: The department&#x27;s budget does not have that many unallocated credits." in body
    )
    assert body.count("unallocated credits.</p>") == 1
    assert snapshot_balances() == before
    assert CreditRequest.objects.get(pk=big.pk).status == "pending"


def test_a_manager_sees_no_pool_request_and_cannot_decide_it(client: Client, acme, eng) -> None:
    org, _, member = acme
    _, manager, _ = eng
    outside = request_credits(org_id=org.id, requester=member, credits=mc(5), reason="x")
    client.force_login(manager)

    assert f'data-request-id="{outside.pk}"' not in client.get(PAGE).content.decode()
    response = client.post(f"{PAGE}requests/approve", {"request_id": str(outside.pk)})

    assert response.status_code == 404
    assert CreditRequest.objects.get(pk=outside.pk).status == "pending"


def test_an_admin_cannot_approve_their_own_request_on_the_page(client: Client, acme) -> None:
    org, admin, _ = acme
    own = request_credits(org_id=org.id, requester=admin, credits=mc(5), reason="x")
    client.force_login(admin)
    assert f'data-request-id="{own.pk}"' not in client.get(PAGE).content.decode()

    response = client.post(f"{PAGE}requests/approve", {"request_id": str(own.pk)})

    assert response.status_code == 403
    assert "Nobody approves or declines their own credit request" in response.content.decode()
    assert CreditRequest.objects.get(pk=own.pk).status == "pending"


def test_a_plain_member_cannot_approve(client: Client, acme, eng) -> None:
    org, _, member = acme
    _, _, engineer = eng
    request = request_credits(org_id=org.id, requester=engineer, credits=mc(5), reason="x")
    client.force_login(member)

    response = client.post(f"{PAGE}requests/approve", {"request_id": str(request.pk)})

    assert response.status_code == 403
    assert CreditRequest.objects.get(pk=request.pk).status == "pending"


def test_an_admin_declines_with_a_note(client: Client, acme) -> None:
    org, admin, member = acme
    request = request_credits(org_id=org.id, requester=member, credits=mc(5), reason="x")
    client.force_login(admin)

    response = client.post(f"{PAGE}requests/decline", {"request_id": str(request.pk), "note": "Not now"})

    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.decision_note) == ("declined", "Not now")
    assert _allocated(org, member) == mc(100)


def test_decisions_need_the_csrf_token(acme) -> None:
    org, admin, member = acme
    request = request_credits(org_id=org.id, requester=member, credits=mc(5), reason="x")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin)

    assert strict.post(f"{PAGE}requests/approve", {"request_id": str(request.pk)}).status_code == 403
    assert CreditRequest.objects.get(pk=request.pk).status == "pending"


# --- departments -------------------------------------------------------------------------------


def test_an_admin_creates_renames_and_resizes_a_department(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)

    assert client.post(f"{PAGE}departments", {"name": "Support", "budget_credits": "120"}).status_code == 302
    department = Department.objects.get(org=org, name="Support")
    assert department.budget_credits == mc(120)
    assert pool_of(org).available_credits == mc(1000 - 100 - 120)

    response = client.post(
        f"{PAGE}departments/edit",
        {"department_id": str(department.pk), "name": "Customer support", "budget_credits": "150.5"},
    )

    assert response.status_code == 302
    department.refresh_from_db()
    assert (department.name, department.budget_credits) == ("Customer support", mc("150.5"))
    assert pool_of(org).available_credits == mc("749.5")


def test_a_budget_beyond_the_pool_is_refused_on_the_page(client: Client, acme) -> None:
    org, admin, _ = acme
    client.force_login(admin)
    before = snapshot_balances()

    response = client.post(f"{PAGE}departments", {"name": "Huge", "budget_credits": "5000"})

    assert response.status_code == 409
    assert re.search(r'<p class="field-error" role="alert">[^<]*pool', response.content.decode())
    assert snapshot_balances() == before


def test_a_manager_or_member_cannot_create_or_edit_departments(client: Client, acme, eng) -> None:
    department, manager, _ = eng
    before = snapshot_balances()
    for user in (manager, acme[2]):
        client.force_login(user)
        assert client.post(f"{PAGE}departments", {"name": "Mine", "budget_credits": "1"}).status_code == 403
        response = client.post(
            f"{PAGE}departments/edit", {"department_id": str(department.pk), "budget_credits": "0"}
        )
        assert response.status_code == 403
    assert snapshot_balances() == before
