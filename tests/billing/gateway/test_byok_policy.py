"""BYOK (X-Provider-Key, charged 0) is off by default: the deployment allows it
(``LLM_BYOK_ENABLED``) and each organization's admins opt in (issue 11 §2)."""

import openai
import pytest

from billing.models import AuditEvent, CreditUsageAttribution
from organizations.services import add_member
from tests.billing.gateway.conftest import api_key, chat, openai_client
from tests.factories import UserFactory
from tests.helpers import assert_error, snapshot_balances

pytestmark = pytest.mark.usefixtures("model_price")
OWN_KEY = {"X-Provider-Key": "sk-callers-own"}


def byok_refusal(client) -> dict:
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(client, "four words of prompt")
    return refused.value.body  # openai puts the "error" object here


def test_byok_is_refused_by_default_and_nothing_goes_upstream(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    client = openai_client(gateway, api_key(user), **OWN_KEY)
    before = snapshot_balances()

    error = byok_refusal(client)

    assert error["code"] == "byok_disabled"
    assert upstream.behaviour.requests == []
    assert snapshot_balances() == before


def test_an_org_opts_in_through_its_admin_before_byok_is_accepted(
    gateway, upstream, make_funded_member, settings, api_client
):
    # given: the deployment allows BYOK; the org has not opted in
    settings.LLM_BYOK_ENABLED = True
    org, user, _ = make_funded_member()
    admin = UserFactory()
    add_member(org_id=org.id, user=admin, role="admin", actor_label="test")
    client = openai_client(gateway, api_key(user), **OWN_KEY)
    error = byok_refusal(client)
    assert (error["code"], error["details"]) == ("byok_disabled", {"org_id": org.id})
    # when: its admin turns it on
    api_client.force_login(admin)
    url = f"/api/v1/org-billing/credits/{org.id}/byok"
    response = api_client.put(url, {"enabled": True}, format="json")
    # then: the call goes through with the caller's key, charged 0, and the change is audited
    assert response.status_code == 200, response.content
    assert response.json() == {
        "org_id": org.id,
        "enabled": True,
        "allowed_by_deployment": True,
        "effective": True,
    }
    _, raw = chat(client, "four words of prompt")
    assert raw.headers["X-Cost-Incurred"] == "0.000"
    assert upstream.behaviour.authorizations == ["Bearer sk-callers-own"]
    assert CreditUsageAttribution.objects.get().service_type == "byok"
    event = AuditEvent.objects.get(action="org.byok_changed")
    assert (event.actor_id, event.org_id, event.metadata) == (admin.pk, org.id, {"byok_enabled": True})


@pytest.mark.django_db
def test_only_org_admins_set_byok_and_only_to_true_or_false(api_client, make_funded_member):
    org, member, _ = make_funded_member()
    admin = UserFactory()
    add_member(org_id=org.id, user=admin, role="admin", actor_label="test")
    url = f"/api/v1/org-billing/credits/{org.id}/byok"
    before = snapshot_balances()

    api_client.force_login(member)
    assert_error(api_client.put(url, {"enabled": True}, format="json"), 403, "forbidden")
    api_client.force_login(UserFactory())
    assert_error(api_client.put(url, {"enabled": True}, format="json"), 404, "organization_not_found")
    api_client.force_login(admin)
    assert_error(api_client.put(url, {"enabled": "yes"}, format="json"), 400, "validation_error")
    assert_error(api_client.put(url, {}, format="json"), 400, "validation_error")

    assert snapshot_balances() == before
    assert api_client.get(url).json()["enabled"] is False
