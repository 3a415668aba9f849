"""GET /credits/{org_id}/grants (org admins) and the grant terms of POST /credits/{org_id}/add
(system admins): shape, scoping, refusals, bad input."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import CreditGrant
from billing.services import add_credits_to_pool, deduct_credits
from tests.factories import OrganizationFactory
from tests.helpers import assert_error, mc, snapshot_balances

pytestmark = pytest.mark.django_db

FIELDS = {
    "grant_id",
    "credits",
    "remaining_credits",
    "expires_at",
    "priority",
    "source",
    "created_at",
    "expired_at",
    "forfeited_credits",
    "retained_credits",
}


def grants_url(org_id: str) -> str:
    return reverse("org-billing-credit-grants", args=[org_id])


def add_url(org_id: str) -> str:
    return reverse("org-billing-credits-add", args=[org_id])


def test_org_admin_lists_grants_with_what_each_has_left(api_client, team):
    # given: the team's 1,000 manual credits, then a promotion that burns first; 30 spent
    expires = timezone.now() + timedelta(days=30)
    promo = add_credits_to_pool(
        org_id=team.org.id, amount=mc(50), source="promotion", expires_at=expires, priority=1
    ).grant
    deduct_credits(org_id=team.org.id, user=team.member, amount=mc(30), request_id="r-1")
    api_client.force_login(team.admin)

    response = api_client.get(grants_url(team.org.id))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2
    newest, first = body["results"]
    assert set(newest) == FIELDS
    assert newest["grant_id"] == promo.pk
    assert (newest["credits"], newest["remaining_credits"], newest["priority"]) == (50.0, 20.0, 1)
    assert (newest["source"], newest["expired_at"], newest["forfeited_credits"]) == ("promotion", None, 0.0)
    assert newest["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M"))
    assert (first["source"], first["credits"], first["remaining_credits"]) == ("manual", 1000.0, 1000.0)


def test_grants_are_paginated_like_the_other_lists(api_client, team):
    for _ in range(3):
        add_credits_to_pool(org_id=team.org.id, amount=mc(1))
    api_client.force_login(team.admin)

    response = api_client.get(grants_url(team.org.id), {"page_size": 2})

    assert response.status_code == 200
    assert (response.json()["count"], len(response.json()["results"])) == (4, 2)
    assert response.json()["next"]
    assert_error(api_client.get(grants_url(team.org.id), {"page_size": 501}), 400, "validation_error")


def test_a_member_may_not_list_grants(api_client, team):
    api_client.force_login(team.member)

    assert_error(api_client.get(grants_url(team.org.id)), 403, "forbidden")


def test_another_orgs_grants_are_not_found(api_client, team):
    other = OrganizationFactory()
    add_credits_to_pool(org_id=other.id, amount=mc(10))
    api_client.force_login(team.admin)

    assert_error(api_client.get(grants_url(other.id)), 404, "organization_not_found")
    assert_error(api_client.get(grants_url("no-such-org")), 404, "organization_not_found")


def test_system_admin_grants_a_promotion_with_expiry_and_priority(api_client, staff_user, team):
    api_client.force_login(staff_user)
    expires = (timezone.now() + timedelta(days=7)).isoformat()

    response = api_client.post(
        add_url(team.org.id),
        {"credits": 25, "source": "promotion", "expires_at": expires, "priority": 2},
        format="json",
    )

    assert response.status_code == 200, response.content
    grant = CreditGrant.objects.get(pk=response.json()["grant_id"])
    assert (grant.source, grant.priority, grant.credits) == ("promotion", 2, mc(25))
    assert grant.expires_at is not None


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"priority": -1}, id="negative-priority"),
        pytest.param({"priority": 1001}, id="huge-priority"),
        pytest.param({"priority": "1"}, id="string-priority"),
        pytest.param({"priority": 1.5}, id="fraction-priority"),
        pytest.param({"priority": True}, id="bool-priority"),
        pytest.param({"source": "legacy"}, id="legacy-source"),
        pytest.param({"source": "purchase"}, id="purchase-source"),
        pytest.param({"expires_at": "2001-01-01T00:00:00Z"}, id="past-expiry"),
        pytest.param({"expires_at": "tomorrow"}, id="bad-expiry"),
    ],
)
def test_bad_grant_terms_are_400_and_change_nothing(api_client, staff_user, team, extra):
    api_client.force_login(staff_user)
    before = snapshot_balances()

    response = api_client.post(add_url(team.org.id), {"credits": 5, **extra}, format="json")

    assert_error(response, 400, "validation_error")
    assert snapshot_balances() == before
    assert CreditGrant.objects.filter(org=team.org).count() == 1


def test_an_org_admin_may_not_set_grant_terms_on_a_card_purchase(api_client, team):
    api_client.force_login(team.admin)

    response = api_client.post(add_url(team.org.id), {"credits": 5, "priority": 1}, format="json")

    assert_error(response, 400, "validation_error")
