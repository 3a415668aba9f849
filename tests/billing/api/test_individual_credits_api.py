"""GET /api/v1/me/credits (a user's own balance, purchases and ledger), the system admins'
POST /api/v1/admin/users/{user_id}/individual-credits/grant, and the admin action doing the
same through the same service."""

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from billing.models import AuditEvent, IndividualCreditBalance, IndividualCreditEntry
from billing.services import add_individual_credits, deduct_credits
from tests.factories import UserFactory
from tests.helpers import assert_error, mc

pytestmark = pytest.mark.django_db

ME_URL = reverse("api-me-credits")


def grant_url(user_id: str) -> str:
    return reverse("api-admin-individual-credits-grant", args=[user_id])


def test_a_user_without_credits_sees_zeros(api_client):
    api_client.force_login(UserFactory())

    response = api_client.get(ME_URL)

    assert response.status_code == 200
    assert response.json() == {
        "total_credits": 0.0,
        "used_credits": 0.0,
        "reserved_credits": 0.0,
        "available_credits": 0.0,
        "purchases": [],
        "entries": [],
    }


def test_a_user_sees_only_their_own_balance_and_ledger(api_client):
    ada, bob = UserFactory(), UserFactory()
    add_individual_credits(user=ada, amount=mc(20), reason="welcome")
    add_individual_credits(user=bob, amount=mc(99))
    deduct_credits(user=ada, org_id=None, amount=mc("2.5"), request_id="ada-1")
    api_client.force_login(ada)

    body = api_client.get(ME_URL).json()

    assert (body["total_credits"], body["used_credits"], body["available_credits"]) == (20.0, 2.5, 17.5)
    assert [(e["kind"], e["credits"], e["reason"]) for e in body["entries"]] == [("grant", 20.0, "welcome")]


def test_anonymous_callers_get_401(api_client):
    assert_error(api_client.get(ME_URL), 401, "unauthenticated")


def test_staff_grant_adds_individual_credits_with_a_ledger_entry_and_audit(api_client, staff_user):
    user = UserFactory(username="ada")
    api_client.force_login(staff_user)

    response = api_client.post(grant_url("ada"), {"credits": 12.5, "reason": "beta tester"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["user_id"], body["credits_granted"], body["balance"]["total_credits"]) == ("ada", 12.5, 12.5)
    entry = IndividualCreditEntry.objects.get()
    assert (entry.kind, entry.credits, entry.reason, entry.actor) == (
        "grant",
        mc("12.5"),
        "beta tester",
        staff_user,
    )
    assert body["entry"]["id"] == entry.pk
    audit = AuditEvent.objects.get(action="individual.credits_added")
    assert (audit.actor, audit.target_id, audit.metadata["reason"]) == (staff_user, "ada", "beta tester")
    assert IndividualCreditBalance.objects.get(user=user).total_credits == mc("12.5")


def test_a_replayed_grant_with_an_idempotency_key_grants_once(api_client, staff_user):
    UserFactory(username="ada")
    api_client.force_login(staff_user)
    body = {"credits": 5, "reason": "promo"}

    first = api_client.post(grant_url("ada"), body, format="json", headers={"Idempotency-Key": "g-1"})
    second = api_client.post(grant_url("ada"), body, format="json", headers={"Idempotency-Key": "g-1"})

    assert (first.status_code, second.status_code) == (200, 200)
    assert IndividualCreditEntry.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"credits": 5}, "validation_error"),  # a reason is required
        ({"credits": 0, "reason": "x"}, "validation_error"),
        ({"credits": -5, "reason": "x"}, "validation_error"),
        ({"credits": "5", "reason": "x"}, "validation_error"),
        ({"credits": 5, "reason": "x", "extra": 1}, "validation_error"),
    ],
)
def test_bad_grant_input_is_400_and_writes_nothing(api_client, staff_user, body, code):
    UserFactory(username="ada")
    api_client.force_login(staff_user)

    assert_error(api_client.post(grant_url("ada"), body, format="json"), 400, code)
    assert not IndividualCreditEntry.objects.exists()
    assert not IndividualCreditBalance.objects.exists()


def test_only_system_admins_grant_individual_credits(api_client):
    UserFactory(username="ada")
    api_client.force_login(UserFactory())

    response = api_client.post(grant_url("ada"), {"credits": 5, "reason": "me"}, format="json")

    assert_error(response, 403, "forbidden")
    assert not IndividualCreditEntry.objects.exists()


def test_a_grant_to_an_unknown_user_is_404(api_client, staff_user):
    api_client.force_login(staff_user)

    assert_error(
        api_client.post(grant_url("nobody"), {"credits": 5, "reason": "x"}, format="json"),
        404,
        "user_not_found",
    )


def test_the_admin_action_grants_through_the_same_service(admin_client, admin_user):
    user = UserFactory(username="ada")
    add_individual_credits(user=user, amount=mc(1))
    url = reverse("admin:billing_individualcreditbalance_changelist")
    data = {"action": "grant_individual_credits_action", helpers.ACTION_CHECKBOX_NAME: [user.pk]}

    form_page = admin_client.post(url, {**data, "index": "0"})
    done = admin_client.post(url, {**data, "apply": "yes", "credits": "7.5", "reason": "support ticket 42"})

    assert form_page.status_code == 200 and "reason" in form_page.context["form"].fields
    assert done.status_code == 302
    assert IndividualCreditBalance.objects.get(user=user).total_credits == mc("8.5")
    entry = IndividualCreditEntry.objects.latest("pk")
    assert (entry.credits, entry.reason, entry.actor, entry.actor_label) == (
        mc("7.5"),
        "support ticket 42",
        admin_user,
        "admin",
    )
