"""Idempotency-Key on money-moving POSTs: a replay returns the first response and moves money
once; another body is 409; two concurrent requests with one key move money once."""

import pytest
from django.test import Client

from billing.models import OrganizationCreditPool, OrgBillingHistory
from tests.concurrency import run_concurrently
from tests.factories import OrganizationFactory
from tests.helpers import assert_error, mc, snapshot_balances

BASE = "/api/v1/org-billing"


@pytest.mark.django_db
def test_replay_returns_the_first_response_and_moves_money_once(api_client, staff_user):
    org = OrganizationFactory()
    api_client.force_login(staff_user)
    headers = {"HTTP_IDEMPOTENCY_KEY": "top-up-1"}
    first = api_client.post(f"{BASE}/credits/{org.id}/add", {"credits": 100}, format="json", **headers)
    assert first.status_code < 300, first.content
    again = api_client.post(f"{BASE}/credits/{org.id}/add", {"credits": 100}, format="json", **headers)
    assert again.status_code == first.status_code
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert OrganizationCreditPool.objects.get(org=org).total_credits == mc(100)


@pytest.mark.django_db
def test_same_key_with_another_body_is_a_conflict(api_client, staff_user):
    org = OrganizationFactory()
    api_client.force_login(staff_user)
    headers = {"HTTP_IDEMPOTENCY_KEY": "top-up-2"}
    api_client.post(f"{BASE}/credits/{org.id}/add", {"credits": 100}, format="json", **headers)
    before = snapshot_balances()
    response = api_client.post(f"{BASE}/credits/{org.id}/add", {"credits": 200}, format="json", **headers)
    assert_error(response, 409, "idempotency_key_reused")
    assert snapshot_balances() == before


@pytest.mark.django_db
def test_a_refusal_is_replayed_too(api_client, make_funded_member):
    org, admin, _ = make_funded_member(pool=10, allocation=10)
    from organizations.models import OrganizationMember

    OrganizationMember.objects.filter(user=admin).update(role="admin")
    api_client.force_login(admin)
    headers = {"HTTP_IDEMPOTENCY_KEY": "alloc-1"}
    body = {"user_id": admin.username, "credits": 50}
    first = api_client.post(f"{BASE}/credits/{org.id}/allocate", body, format="json", **headers)
    assert_error(first, 409, "allocation_exceeds_pool")
    from billing.services import add_credits_to_pool

    add_credits_to_pool(org_id=org.id, amount=mc(100))
    again = api_client.post(f"{BASE}/credits/{org.id}/allocate", body, format="json", **headers)
    assert again.status_code == 409
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_move_money_once(staff_user):
    org = OrganizationFactory()

    def post(_: int) -> int:
        client = Client()
        client.force_login(staff_user)
        response = client.post(
            f"{BASE}/credits/{org.id}/add",
            {"credits": 100},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="racing-key",
        )
        return response.status_code

    statuses = run_concurrently(post, 8)
    assert all(isinstance(s, int) and s < 300 for s in statuses), statuses
    assert OrganizationCreditPool.objects.get(org=org).total_credits == mc(100)
    assert OrgBillingHistory.objects.filter(org=org).count() == 1


@pytest.mark.django_db(transaction=True)
def test_money_never_moves_without_its_stored_response(api_client, staff_user, make_funded_member):
    """The database fails between the allocation and the stored response (a real PostgreSQL
    error, raised by a trigger as if the server shut down): nothing may have moved, so the
    client's retry with the key allocates once — not twice."""
    from django.db import connection

    from billing.models import UserCreditAllocation

    org, member, allocation = make_funded_member(pool=1000, allocation=100)
    api_client.force_login(staff_user)
    body = {"user_id": member.username, "credits": 10}
    headers = {"HTTP_IDEMPOTENCY_KEY": "allocate-once"}
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION fail_idempotency_insert() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'terminating connection' USING ERRCODE = '57P01'; END $$;"
            "CREATE TRIGGER fail_idempotency_insert BEFORE INSERT ON api_idempotency_records "
            "FOR EACH ROW EXECUTE FUNCTION fail_idempotency_insert();"
        )
    try:
        refused = api_client.post(f"{BASE}/credits/{org.id}/allocate", body, format="json", **headers)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER fail_idempotency_insert ON api_idempotency_records;"
                "DROP FUNCTION fail_idempotency_insert();"
            )
    assert_error(refused, 503, "service_unavailable")
    assert UserCreditAllocation.objects.get(pk=allocation.pk).allocated_credits == mc(100)

    retried = api_client.post(f"{BASE}/credits/{org.id}/allocate", body, format="json", **headers)

    assert retried.status_code == 200, retried.content
    assert UserCreditAllocation.objects.get(pk=allocation.pk).allocated_credits == mc(110)
