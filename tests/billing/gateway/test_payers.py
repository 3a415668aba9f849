"""Who pays: the org named by X-Org-Id, the default org, individual credits; and who may call."""

import secrets

import httpx
import openai
import pytest
from django.test import Client

from billing.models import CreditUsageAttribution, IndividualCreditBalance, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import add_individual_credits, allocate_credits_to_user
from organizations.services import add_member
from tests.billing.gateway.conftest import MODEL, api_key, chat, openai_client
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.usefixtures("model_price")


def error_of(exc: openai.APIStatusError) -> dict:
    return exc.response.json()["error"]


def test_multi_org_user_is_charged_to_the_org_in_x_org_id(gateway, upstream, make_funded_member):
    first, user, first_allocation = make_funded_member()
    second, _, _ = make_funded_member()
    add_member(org_id=second.id, user=user, actor_label="test")
    allocate_credits_to_user(org_id=second.id, user=user, amount=mc(5), actor_label="test")
    client = openai_client(gateway, api_key(user), **{"X-Org-Id": second.id})

    _, raw = chat(client)

    row = CreditUsageAttribution.objects.get()
    assert row.org_id == second.id
    assert raw.headers["X-Org-Id"] == second.id
    assert UserCreditAllocation.objects.get(org=second, user=user).used_credits == row.credits_used
    first_allocation.refresh_from_db()
    assert first_allocation.used_credits == 0
    assert find_all_drifts() == []


def test_org_the_user_does_not_belong_to_is_404(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    stranger_org = OrganizationFactory()

    with pytest.raises(openai.NotFoundError) as caught:
        chat(openai_client(gateway, api_key(user), **{"X-Org-Id": stranger_org.id}))

    assert error_of(caught.value)["code"] == "not_a_member"
    assert upstream.behaviour.requests == []


def test_user_without_org_is_charged_to_individual_credits(gateway, upstream):
    user = UserFactory()
    add_individual_credits(user=user, amount=mc(2), actor_label="test")

    _, raw = chat(openai_client(gateway, api_key(user)))

    row = CreditUsageAttribution.objects.get()
    assert row.org_id is None
    assert row.allocation_id is None
    assert row.user_id == user.pk
    balance = IndividualCreditBalance.objects.get(user=user)
    assert balance.used_credits == row.credits_used > 0
    assert balance.reserved_credits == 0
    assert raw.headers["X-Org-Id"] == ""
    assert raw.headers["X-Credits-Remaining"] == f"{(mc(2) - row.credits_used) / 1000:.3f}"


def test_member_without_allocation_gets_402_no_allocation(gateway, upstream):
    org = OrganizationFactory()
    user = UserFactory()
    add_member(org_id=org.id, user=user, actor_label="test")

    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client(gateway, api_key(user)))

    assert caught.value.status_code == 402
    error = error_of(caught.value)
    assert error["code"] == "no_allocation"
    assert error["message"] == "The user has no active credit allocation in this organization."
    assert upstream.behaviour.requests == []


def test_org_scoped_key_pays_with_its_org_and_cannot_name_another(gateway, upstream, make_funded_member):
    first, user, _ = make_funded_member()
    second, _, _ = make_funded_member()
    add_member(org_id=second.id, user=user, is_default=True, actor_label="test")
    allocate_credits_to_user(org_id=second.id, user=user, amount=mc(5), actor_label="test")
    key = api_key(user, org_id=first.id)

    chat(openai_client(gateway, key))
    with pytest.raises(openai.NotFoundError) as caught:
        chat(openai_client(gateway, key, **{"X-Org-Id": second.id}))

    assert CreditUsageAttribution.objects.get().org_id == first.id  # not the default org
    assert error_of(caught.value)["code"] == "organization_not_found"


def test_no_credentials_is_401(gateway, upstream):
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(openai_client(gateway, "not-a-key"))

    assert error_of(caught.value)["code"] == "unauthenticated"
    assert upstream.behaviour.requests == []


def test_unknown_api_key_is_401(gateway, upstream):
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(openai_client(gateway, "obk_" + "A" * 43))

    assert error_of(caught.value)["code"] == "unauthenticated"


def test_read_only_key_may_list_models_but_not_spend(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    client = openai_client(gateway, api_key(user, scopes=["read"]))

    assert [m.id for m in client.models.list().data] == [MODEL]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(client)

    assert error_of(caught.value)["code"] == "forbidden"
    assert upstream.behaviour.requests == []


def test_session_with_csrf_token_may_call(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    browser = Client()
    browser.force_login(user)
    csrf = secrets.token_hex(16)  # a 32-character CSRF secret
    cookies = f"sessionid={browser.cookies['sessionid'].value}; csrftoken={csrf}"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}

    with_token = httpx.post(
        f"{gateway.llm_url}/chat/completions", json=body, headers={"Cookie": cookies, "X-CSRFToken": csrf}
    )
    without_token = httpx.post(f"{gateway.llm_url}/chat/completions", json=body, headers={"Cookie": cookies})

    assert with_token.status_code == 200, with_token.text
    assert with_token.headers["X-Cost-Incurred"]
    assert without_token.status_code == 403
    assert without_token.json()["error"]["code"] == "forbidden"
    assert CreditUsageAttribution.objects.get().user_id == user.pk
