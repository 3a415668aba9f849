"""The org page's credit grants (issue 14 §8): admins see each grant through the API's selector
(source, credits, remaining with a bar, expiry highlighted within 7 days, priority, expired and
forfeited); members do not. Allocations show their period, and the allocate form sets one with
the API's serializer: bad input is refused on the page and writes nothing."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import UserCreditAllocation
from billing.selectors.grants import org_grants
from billing.services import PeriodChange, add_credits_to_pool, allocate_credits_to_user, deduct_credits
from billing.services.grant_expiry import expire_org_grants
from tests.helpers import mc, pool_of

pytestmark = pytest.mark.django_db


def _row(body: str, attribute: str, value: object) -> str:
    match = re.search(rf'<tr {attribute}="{value}"[^>]*>.*?</tr>', body, re.S)
    assert match, f"no row {attribute}={value}"
    return match.group(0)


def test_an_admin_sees_each_grant_with_what_it_has_left(client: Client, acme) -> None:
    org, admin, member = acme
    now = timezone.now()
    soon = add_credits_to_pool(
        org_id=org.id,
        amount=mc(200),
        actor_label="test",
        source="promotion",
        expires_at=now + timedelta(days=3),
        priority=1,
    ).grant
    later = add_credits_to_pool(
        org_id=org.id, amount=mc(50), actor_label="test", expires_at=now + timedelta(days=30)
    ).grant
    deduct_credits(user=member, org_id=org.id, amount=mc(60), request_id="g1", service_name="m")
    client.force_login(admin)

    body = client.get("/portal/orgs/acme/").content.decode()

    views = {view.grant_id: view for view in org_grants(org_id=org.id)}
    assert views[soon.pk].remaining_credits == mc(140)  # priority 1 burns first
    row = _row(body, "data-grant-id", soon.pk)
    assert 'class="expiring-soon"' in row and "expires within 7 days" in row
    assert "promotion" in row and ">200<" in row and ">140<" in row
    assert '<meter min="0" max="100" value="70"' in row
    assert '<td class="num">1</td>' in row
    far = _row(body, "data-grant-id", later.pk)
    assert "expiring-soon" not in far and "expires within 7 days" not in far and ">50<" in far
    assert body.count('data-grant-id="') == 3  # the fixture's 1,000 too


def test_an_expired_grant_shows_what_was_forfeited(client: Client, acme) -> None:
    org, admin, _ = acme
    expires = timezone.now() + timedelta(hours=1)
    grant = add_credits_to_pool(org_id=org.id, amount=mc(30), actor_label="test", expires_at=expires).grant
    expire_org_grants(org_id=org.id, now=expires + timedelta(seconds=1))
    client.force_login(admin)

    row = _row(client.get("/portal/orgs/acme/").content.decode(), "data-grant-id", grant.pk)

    assert "expired <time" in row and "30 forfeited" in row and "expiring-soon" not in row


def test_a_member_does_not_see_the_grants(client: Client, acme) -> None:
    client.force_login(acme[2])

    body = client.get("/portal/orgs/acme/").content.decode()

    assert "Credit grants" not in body and "data-grant-id" not in body


def test_a_recurring_allocation_shows_its_period_to_the_admin_and_the_member(client: Client, acme) -> None:
    org, admin, member = acme
    allocate_credits_to_user(
        org_id=org.id,
        user=member,
        amount=mc(10),
        actor_label="test",
        period=PeriodChange(period="monthly", mode="refill"),
    )
    allocation = UserCreditAllocation.objects.get(org=org, user=member, is_active=True)
    label = f"monthly · refill · next {allocation.next_period_start.date().isoformat()}"

    client.force_login(admin)
    assert label in _row(client.get("/portal/orgs/acme/").content.decode(), "data-user-id", "mia")
    client.force_login(member)
    assert label in client.get("/portal/orgs/acme/").content.decode()


def test_the_allocate_form_makes_an_allocation_recurring(client: Client, acme) -> None:
    org, admin, member = acme
    client.force_login(admin)

    response = client.post(
        "/portal/orgs/acme/allocate",
        {
            "user_id": "mia",
            "credits": "20",
            "period": "weekly",
            "period_mode": "refill",
            "rollover_cap_credits": "5",
        },
    )

    assert response.status_code == 302
    allocation = UserCreditAllocation.objects.get(org=org, user=member, is_active=True)
    assert (allocation.allocated_credits, allocation.period, allocation.period_mode) == (
        mc(120),
        "weekly",
        "refill",
    )
    assert allocation.rollover_cap_credits == mc(5)
    assert "weekly · refill · next" in client.get("/portal/orgs/acme/").content.decode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"period": "weekly", "period_mode": "reset", "rollover_cap_credits": "5"}, "Only a refill carries"),
        ({"period": "yearly"}, "is not a valid choice"),
        ({"period": "daily", "period_mode": "sometimes"}, "is not a valid choice"),
        ({"period": "daily", "rollover_cap_credits": "-1"}, ""),
    ],
)
def test_bad_period_input_is_refused_on_the_page_and_writes_nothing(
    client: Client, acme, fields: dict[str, str], message: str
) -> None:
    org, admin, member = acme
    client.force_login(admin)

    response = client.post("/portal/orgs/acme/allocate", {"user_id": "mia", "credits": "20", **fields})

    assert response.status_code == 400
    error = re.search(r'<p class="field-error" id="credits-\d+-error">([^<]*)</p>', response.content.decode())
    assert error and message in error.group(1)
    allocation = UserCreditAllocation.objects.get(org=org, user=member, is_active=True)
    assert (allocation.allocated_credits, allocation.period) == (mc(100), "")
    assert pool_of(org).allocated_credits == mc(100)
