"""``/portal/system/``: the system overview for system admins; everyone else is refused."""

import pytest
from django.test import Client

from billing.services import add_credits_to_pool, allocate_credits_to_user, deduct_credits
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db


def _busy_org(org_id: str, members: int) -> None:
    OrganizationFactory(id=org_id, org_name=f"Org {org_id}")
    add_credits_to_pool(org_id=org_id, amount=mc(10_000), actor_label="test")
    for n in range(members):
        user = UserFactory()
        add_member(org_id=org_id, user=user, actor_label="test")
        allocate_credits_to_user(org_id=org_id, user=user, amount=mc(100), actor_label="test")
        deduct_credits(user=user, org_id=org_id, amount=mc(3), request_id=f"{org_id}-{n}", service_name="m")


def test_a_system_admin_sees_every_org(client: Client, django_assert_max_num_queries) -> None:
    for n in range(4):
        _busy_org(f"busy-{n}", members=3)
    client.force_login(UserFactory(is_staff=True))

    with django_assert_max_num_queries(18):
        response = client.get("/portal/system/")

    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('href="/portal/orgs/busy-') == 4
    assert "36 <span" in body  # 4 orgs × 3 members × 3 credits used


def test_a_non_staff_user_is_refused(client: Client) -> None:
    _busy_org("busy", members=1)
    client.force_login(UserFactory())

    response = client.get("/portal/system/")

    assert response.status_code == 403
    body = response.content.decode()
    assert "Only system admins can see the system overview." in body
    assert "busy" not in body
