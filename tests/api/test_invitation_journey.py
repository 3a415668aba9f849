"""Membership takes the invitee's consent, black-box over HTTP against the served app (uvicorn
on loopback, a fake LLM upstream, API keys): an added user is only ``invited`` and is billed
exactly as before until they accept; declining leaves the org 404 to them; accepting makes
them a member; leaving ends it. Inviting an address with no account answers exactly like
inviting one with an account."""

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from billing.models import IndividualCreditBalance, ModelPrice
from billing.services import add_credits_to_pool, add_individual_credits
from organizations.services import create_api_key, create_organization
from tests.factories import UserFactory
from tests.fake_upstream import running_upstream
from tests.helpers import mc
from tests.served import served_in_thread

pytestmark = pytest.mark.usefixtures("transactional_db")

MODEL = "invite-journey-model"
ORG = "acme-invites"


@pytest.fixture
def app(settings) -> Iterator[str]:
    with running_upstream() as upstream:
        settings.LLM_UPSTREAM_BASE_URL = upstream.base_url
        settings.LLM_UPSTREAM_API_KEY = "sk-upstream"
        settings.LLM_UPSTREAM_TIMEOUT_SECONDS = 5.0
        settings.LLM_DEFAULT_MAX_OUTPUT_TOKENS = 4096
        with served_in_thread() as url:
            yield url


def client(url: str, user: Any) -> httpx.Client:
    key = create_api_key(user=user, name="journey")[1]
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def chat(api: httpx.Client) -> httpx.Response:
    return api.post(
        "/api/v1/llm/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hello there"}]},
    )


def invitation_shape(response: httpx.Response) -> dict[str, Any]:
    """The answer with what must differ between two invitations taken out: the address typed,
    the random id, and the clock (checked for form and a 14-day deadline)."""
    body = dict(response.json())
    body.pop("email")
    uuid.UUID(body.pop("invitation_id"))
    invited_at = datetime.fromisoformat(body.pop("invited_at"))
    expires_at = datetime.fromisoformat(body.pop("expires_at"))
    assert expires_at - invited_at == timedelta(days=14)
    return {"status": response.status_code, "body": body, "headers": sorted(response.headers.keys())}


def test_membership_needs_the_invitees_consent(app):
    # given an org run by its admin, and a user who pays with their own credits
    admin = UserFactory(username="acme-boss", email="boss@acme.test")
    create_organization(org_id=ORG, org_name="Acme", created_by=admin)
    add_credits_to_pool(org_id=ORG, amount=mc(1000), actor_label="test")
    victim = UserFactory(
        username="victim-sub", email="victim@example.test", first_name="Vic", last_name="Tim"
    )
    add_individual_credits(user=victim, amount=mc(5), actor_label="test")
    ModelPrice.objects.create(
        model=MODEL, input_credits_per_million=Decimal("150"), output_credits_per_million=Decimal("600")
    )
    boss, me = client(app, admin), client(app, victim)
    members = f"/api/v1/organizations/{ORG}/members"
    usage = f"/api/v1/org-billing/credits/{ORG}/usage"
    profile_before = me.get("/api/v1/me").json()
    assert profile_before["billing_context"] == {
        "org_id": None,
        "source": "individual",
        "can_bill": True,
        "refusal_code": None,
    }

    # when the admin adds them by e-mail
    known = boss.post(members, json={"email": "victim@example.test"})

    # then it is an invitation that names no account
    assert known.status_code == 201, known.text
    assert known.json()["status"] == "invited"
    assert known.json()["user_id"] is None
    assert "victim-sub" not in known.text and "Vic" not in known.text
    # and an address nobody has answers exactly the same
    unknown = boss.post(members, json={"email": "nobody-yet@example.test"})
    assert invitation_shape(unknown) == invitation_shape(known)

    # and nothing changed for the invitee: profile, billing context, who pays, what they see
    assert me.get("/api/v1/me").json() == profile_before
    call = chat(me)
    assert call.status_code == 200, call.text
    assert call.headers["X-Org-Id"] == ""
    assert IndividualCreditBalance.objects.get(user=victim).used_credits > 0
    assert me.get(usage).json()["error"]["code"] == "organization_not_found"
    invitations = me.get("/api/v1/me/invitations").json()
    assert [(i["org_id"], i["org_name"], i["invited_by"]) for i in invitations] == [
        (ORG, "Acme", "acme-boss")
    ]

    # when they decline, the org stays 404 to them and the invitation is gone
    declined = me.post(f"/api/v1/me/invitations/{ORG}/decline")
    assert declined.status_code == 200, declined.text
    assert me.get(usage).status_code == 404
    assert me.get("/api/v1/me/invitations").json() == []
    assert me.post(f"/api/v1/me/invitations/{ORG}/accept").json()["error"]["code"] == "invitation_not_found"

    # when invited again and they accept, they are a member and the org pays for them
    assert boss.post(members, json={"email": "victim@example.test"}).status_code == 201
    accepted = me.post(f"/api/v1/me/invitations/{ORG}/accept")
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["org_id"], accepted.json()["status"]) == (ORG, "active")
    assert me.get("/api/v1/me").json()["billing_context"] == {
        "org_id": ORG,
        "source": "oldest",
        "can_bill": True,
        "refusal_code": None,
    }
    assert me.get(usage).status_code == 200
    listed = {row["user_id"]: row for row in boss.get(members).json()["results"]}
    assert listed["victim-sub"]["status"] == "active"
    allocated = boss.post(
        f"/api/v1/org-billing/credits/{ORG}/allocate", json={"user_id": "victim-sub", "credits": 10.0}
    )
    assert allocated.status_code in (200, 201), allocated.text
    call = chat(me)
    assert call.status_code == 200, call.text
    assert call.headers["X-Org-Id"] == ORG

    # when they leave, their unused credits go back to the pool and the org is 404 again
    left = me.post(f"/api/v1/me/organizations/{ORG}/leave")
    assert left.status_code == 200, left.text
    assert 0 < left.json()["returned_to_pool"] < 10.0
    assert me.get(usage).status_code == 404
    assert me.get("/api/v1/me").json()["billing_context"]["source"] == "individual"
    assert "victim-sub" not in {row["user_id"] for row in boss.get(members).json()["results"]}

    # and the last admin cannot leave
    refused = boss.post(f"/api/v1/me/organizations/{ORG}/leave")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "last_admin")
