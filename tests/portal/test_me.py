"""``/portal/`` — my credits: what it shows, and each action through the API's services."""

import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from billing.models import CreditUsageAttribution
from billing.services import (
    add_credits_to_pool,
    add_individual_credits,
    allocate_credits_to_user,
    deduct_credits,
)
from organizations.models import ApiKey, OrganizationMember
from organizations.services import add_member, create_api_key, invite_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db


def _member_of(user, org_id: str, *, pool: str = "5000", allocation: str = "1234.5") -> None:
    org = OrganizationFactory(id=org_id, org_name=f"Org {org_id}")
    add_credits_to_pool(org_id=org.id, amount=mc(pool), actor_label="test")
    add_member(org_id=org.id, user=user, actor_label="test")
    allocate_credits_to_user(org_id=org.id, user=user, amount=mc(allocation), actor_label="test")


def _charge(user, org_id: str | None, credits: str, model: str, at: datetime, request_id: str) -> None:
    """A real charge, dated ``at`` (the ledger stamps rows with the database's clock)."""
    deduct_credits(user=user, org_id=org_id, amount=mc(credits), request_id=request_id, service_name=model)
    CreditUsageAttribution.objects.filter(user=user, request_id=request_id).update(created_at=at)


@pytest.fixture
def ada(client: Client):
    user = UserFactory(username="ada")
    client.force_login(user)
    return user


def _chart(response) -> dict:
    body = response.content.decode()
    start = body.index('<script id="usage-chart-data" type="application/json">') + len(
        '<script id="usage-chart-data" type="application/json">'
    )
    return json.loads(body[start : body.index("</script>", start)])


def test_each_org_shows_my_allocation_in_credits_not_millicredits(client: Client, ada) -> None:
    _member_of(ada, "acme", allocation="1234.5")
    deduct_credits(user=ada, org_id="acme", amount=mc("34.25"), request_id="r1", service_name="gpt-4o-mini")

    body = client.get("/portal/").content.decode()

    row = body[body.index('data-org-id="acme"') :]
    row = row[: row.index("</tr>")]
    assert "Org acme" in row
    assert "1,234.5" in row  # allocated
    assert "34.25" in row  # used
    assert "1,200.25" in row  # remaining
    assert "1234500" not in body


def test_the_chart_holds_my_usage_by_day_and_model(client: Client, ada) -> None:
    _member_of(ada, "acme")
    _charge(ada, "acme", "2", "gpt-4o-mini", datetime(2026, 3, 10, 12, tzinfo=UTC), "a")
    _charge(ada, "acme", "3.5", "claude", datetime(2026, 3, 12, 9, tzinfo=UTC), "b")
    _charge(ada, "acme", "1", "gpt-4o-mini", datetime(2026, 3, 12, 10, tzinfo=UTC), "c")
    _charge(ada, "acme", "7", "claude", datetime(2026, 2, 1, 10, tzinfo=UTC), "too-old")
    # someone else's usage in the same org is not mine
    other = UserFactory()
    add_member(org_id="acme", user=other, actor_label="test")
    allocate_credits_to_user(org_id="acme", user=other, amount=mc("10"), actor_label="test")
    _charge(other, "acme", "5", "claude", datetime(2026, 3, 12, 11, tzinfo=UTC), "d")

    with time_machine.travel(datetime(2026, 3, 12, 12, tzinfo=UTC), tick=False):
        chart = _chart(client.get("/portal/"))

    assert len(chart["labels"]) == 30
    assert chart["labels"][-1] == "2026-03-12"
    series = {s["label"]: s["data"] for s in chart["series"]}
    assert set(series) == {"gpt-4o-mini", "claude"}
    assert series["claude"][-1] == "3.500"
    assert series["gpt-4o-mini"][-1] == "1.000"
    assert series["gpt-4o-mini"][-3] == "2.000"
    assert sum(float(v) for v in series["claude"]) == 3.5


def test_the_chart_counts_days_in_my_time_zone(client: Client, ada) -> None:
    _member_of(ada, "acme")
    # 23:30 UTC on the 10th is already the 11th in Tokyo
    _charge(ada, "acme", "2", "m", datetime(2026, 3, 10, 23, 30, tzinfo=UTC), "a")
    client.cookies["portal_tz"] = "Asia%2FTokyo"  # as the page's script writes it

    with time_machine.travel(datetime(2026, 3, 12, 1, tzinfo=UTC), tick=False):
        chart = _chart(client.get("/portal/"))

    day = chart["labels"].index("2026-03-11")
    assert chart["series"][0]["data"][day] == "2.000"


def test_an_unknown_time_zone_falls_back_to_utc(client: Client, ada) -> None:
    client.cookies["portal_tz"] = "Mars/Olympus_Mons"
    with time_machine.travel(datetime(2026, 3, 12, 23, 30, tzinfo=UTC), tick=False):
        chart = _chart(client.get("/portal/"))
    assert chart["labels"][-1] == "2026-03-12"


def test_the_page_runs_the_same_number_of_queries_for_many_orgs_keys_and_calls(
    client: Client, ada, django_assert_max_num_queries
) -> None:
    for n in range(6):
        _member_of(ada, f"team-{n}", allocation="10")
        for call in range(3):
            deduct_credits(
                user=ada, org_id=f"team-{n}", amount=mc("1"), request_id=f"{n}-{call}", service_name="m"
            )
        create_api_key(user=ada, name=f"key {n}", org_id=f"team-{n}")
        invite_member(
            org_id=OrganizationFactory().id, user=ada, role="member", actor=UserFactory(), notify=False
        )

    with django_assert_max_num_queries(10):
        response = client.get("/portal/")

    assert response.status_code == 200
    assert response.content.decode().count('data-key-id="') == 6


def test_choosing_the_default_org_goes_through_the_service(client: Client, ada) -> None:
    _member_of(ada, "acme")
    _member_of(ada, "globex")

    response = client.post("/portal/default-org", {"org_id": "globex"})

    assert response.status_code == 302
    default = OrganizationMember.objects.get(user=ada, is_default=True)
    assert default.org_id == "globex"
    assert "pays by default" in client.get("/portal/").content.decode()


def test_an_org_i_do_not_belong_to_is_refused_next_to_the_field_and_nothing_changes(
    client: Client, ada
) -> None:
    _member_of(ada, "acme")
    client.post("/portal/default-org", {"org_id": "acme"})
    OrganizationFactory(id="not-mine")

    response = client.post("/portal/default-org", {"org_id": "not-mine"})

    assert response.status_code == 404  # as the API answers
    body = response.content.decode()
    assert '<p class="field-error" id="default-org-error">Organization not found.</p>' in body
    assert OrganizationMember.objects.get(user=ada, is_default=True).org_id == "acme"


def test_forms_need_the_csrf_token(ada) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(ada)
    _member_of(ada, "acme")

    response = strict.post("/portal/keys", {"name": "ci"})

    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_a_created_key_is_shown_once(client: Client, ada) -> None:
    _member_of(ada, "acme")

    response = client.post("/portal/keys", {"name": "ci", "org_id": "acme", "scopes": ["read"]})

    assert response.status_code == 200
    key = ApiKey.objects.get(user=ada)
    assert (key.name, key.org_id, key.scopes) == ("ci", "acme", ["read"])
    body = response.content.decode()
    start = body.index('id="new-key-value" value="') + len('id="new-key-value" value="')
    raw = body[start : body.index('"', start)]
    assert raw.startswith(key.prefix) and len(raw) == 47
    assert raw not in client.get("/portal/").content.decode()


def test_a_key_without_a_name_is_refused_in_the_api_words(client: Client, ada) -> None:
    response = client.post("/portal/keys", {"name": "", "scopes": ["read"]})

    assert response.status_code == 400
    assert (
        '<p class="field-error" id="key-name-error">This field may not be blank.</p>'
        in response.content.decode()
    )
    assert not ApiKey.objects.exists()


def test_a_key_for_an_org_i_do_not_belong_to_is_refused(client: Client, ada) -> None:
    OrganizationFactory(id="not-mine")

    response = client.post("/portal/keys", {"name": "ci", "org_id": "not-mine", "scopes": ["read"]})

    assert response.status_code == 404
    assert 'id="key-org-error">Organization not found.</p>' in response.content.decode()
    assert not ApiKey.objects.exists()


def test_revoking_my_key(client: Client, ada) -> None:
    key, _ = create_api_key(user=ada, name="ci")

    response = client.post(f"/portal/keys/{key.pk}/revoke")

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_someone_elses_key_cannot_be_revoked(client: Client, ada) -> None:
    theirs, _ = create_api_key(user=UserFactory(), name="theirs")

    response = client.post(f"/portal/keys/{theirs.pk}/revoke")

    assert response.status_code == 404
    assert "API key not found." in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_accepting_and_declining_invitations(client: Client, ada) -> None:
    inviter = UserFactory()
    for org_id in ("join-me", "skip-me"):
        OrganizationFactory(id=org_id)
        invite_member(org_id=org_id, user=ada, role="member", actor=inviter, notify=False)
    body = client.get("/portal/").content.decode()
    assert 'aria-label="Accept the invitation to Org join-me"' in body

    assert client.post("/portal/invitations/join-me/accept").status_code == 302
    assert client.post("/portal/invitations/skip-me/decline").status_code == 302

    statuses = dict(OrganizationMember.objects.filter(user=ada).values_list("org_id", "status"))
    assert statuses == {"join-me": "active"}


def test_answering_an_invitation_that_does_not_exist_says_so(client: Client, ada) -> None:
    response = client.post("/portal/invitations/nowhere/accept")

    assert response.status_code == 404
    assert "There is no pending invitation to this organization." in response.content.decode()
    assert not OrganizationMember.objects.filter(user=ada).exists()


def test_my_individual_credits_usage_is_in_the_chart_too(client: Client, ada) -> None:
    add_individual_credits(user=ada, amount=mc("50"), actor_label="test")
    deduct_credits(user=ada, org_id=None, amount=mc("4"), request_id="own", service_name="llama")

    chart = _chart(client.get("/portal/"))

    assert chart["series"][0]["label"] == "llama"
    assert chart["series"][0]["data"][-1] == "4.000"
    assert CreditUsageAttribution.objects.filter(user=ada, org__isnull=True).count() == 1
