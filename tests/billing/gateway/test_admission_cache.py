"""The gateway's in-process cache of API key → user, who pays and the model's price
(``billing.services.gateway_calls.cache``): a change committed before a call applies to that
call — each case warms the cache with one call, changes one thing, and the very next call sees it.
"""

import threading
import time
from decimal import Decimal

import openai
import pytest

from billing.models import CreditUsageAttribution, ModelPrice
from billing.services import add_individual_credits, allocate_credits_to_user
from billing.services.gateway_calls import cache
from organizations.models import ApiKey, OrganizationMember
from organizations.services import (
    add_member,
    create_api_key,
    revoke_api_key,
    set_member_status,
    set_organization_active,
)
from organizations.services.api_keys import authenticate_api_key
from tests.billing.gateway.conftest import MODEL, chat, openai_client
from tests.factories import UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.usefixtures("model_price")


def code_of(exc: openai.APIStatusError) -> str:
    return exc.response.json()["error"]["code"]


def test_a_revoked_key_is_refused_on_the_next_call(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    key, raw_key = create_api_key(user=user, name="cache test")
    client = openai_client(gateway, raw_key)
    chat(client)  # the key is now cached

    revoke_api_key(key_id=key.pk, actor=None, actor_label="test")

    with pytest.raises(openai.AuthenticationError):
        chat(client)
    assert len(upstream.behaviour.requests) == 1
    assert CreditUsageAttribution.objects.count() == 1


def test_no_call_started_after_a_revocation_succeeds_under_concurrent_calls(
    gateway, upstream, make_funded_member
):
    """Four threads call in a loop with one key (its cache entry hot in the serving process)
    while it is revoked: every call that started after the revocation committed is refused."""
    _, user, _ = make_funded_member()
    key, raw_key = create_api_key(user=user, name="cache test")
    results: list[tuple[float, bool]] = []  # (started, succeeded)
    errors: list[Exception] = []
    stop = threading.Event()

    def caller() -> None:
        client = openai_client(gateway, raw_key)
        while not stop.is_set():
            started = time.perf_counter()
            try:
                chat(client)
                results.append((started, True))
            except openai.AuthenticationError:
                results.append((started, False))
            except Exception as exc:  # any other outcome fails the test below
                errors.append(exc)
                return

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(results) < 8 and not errors and time.monotonic() < deadline:
        time.sleep(0.05)  # the key's entry is hot and calls are running
    revoke_api_key(key_id=key.pk, actor=None, actor_label="test")
    revoked = time.perf_counter()
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert any(ok for started, ok in results if started < revoked)
    assert any(started > revoked for started, _ in results)
    assert [started for started, ok in results if ok and started > revoked] == []
    assert CreditUsageAttribution.objects.count() == sum(ok for _, ok in results)


def test_a_suspended_member_is_refused_on_the_next_call(gateway, upstream, make_funded_member):
    org, user, _ = make_funded_member()
    add_member(org_id=org.id, user=UserFactory(), actor_label="test", role=OrganizationMember.Role.ADMIN)
    client = openai_client(gateway, create_api_key(user=user, name="cache test")[1])
    chat(client)

    set_member_status(
        org_id=org.id, user=user, status=OrganizationMember.Status.SUSPENDED, actor_label="test"
    )

    with pytest.raises(openai.APIStatusError) as caught:
        chat(client)
    assert code_of(caught.value) == "not_a_member"
    assert len(upstream.behaviour.requests) == 1


def test_a_deactivated_org_is_refused_on_the_next_call(gateway, upstream, make_funded_member):
    org, user, _ = make_funded_member()
    client = openai_client(gateway, create_api_key(user=user, name="cache test")[1])
    chat(client)

    set_organization_active(org_id=org.id, is_active=False, actor=None, actor_label="test")

    with pytest.raises(openai.APIStatusError) as caught:
        chat(client)
    assert code_of(caught.value) == "organization_inactive"
    assert len(upstream.behaviour.requests) == 1


def test_a_price_change_applies_to_the_next_call(gateway, upstream, make_funded_member):
    _, user, _ = make_funded_member()
    client = openai_client(gateway, create_api_key(user=user, name="cache test")[1])
    _, first = chat(client, "four words of prompt", max_tokens=50)

    ModelPrice.objects.filter(model=MODEL).update(output_credits_per_million=Decimal("1200"))

    _, second = chat(client, "four words of prompt", max_tokens=50)
    assert (first.headers["X-Cost-Incurred"], second.headers["X-Cost-Incurred"]) == ("0.013", "0.025")


def test_joining_an_org_moves_the_next_call_off_individual_credits(gateway, upstream, make_funded_member):
    org, _, _ = make_funded_member()
    user = UserFactory()
    add_individual_credits(user=user, amount=mc(2), actor_label="test")
    client = openai_client(gateway, create_api_key(user=user, name="cache test")[1])
    _, first = chat(client)

    add_member(org_id=org.id, user=user, actor_label="test")
    allocate_credits_to_user(org_id=org.id, user=user, amount=mc(5), actor_label="test")

    _, second = chat(client)
    assert (first.headers["X-Org-Id"], second.headers["X-Org-Id"]) == ("", org.id)


@pytest.mark.django_db(transaction=True)
def test_reads_are_loaded_once_per_generation_and_again_after_a_change(settings):
    settings.LLM_GATEWAY_CACHE = True
    cache.clear()
    loads: list[str] = []

    def load() -> str:
        loads.append("read")
        return "value"

    assert [cache.view().get(("x",), load) for _ in range(3)] == ["value"] * 3
    assert len(loads) == 1
    ModelPrice.objects.create(model="another", input_credits_per_million=1, output_credits_per_million=1)
    # A call starts under the generation it last read (the hold checks it); checked, it has moved.
    stale = cache.view()
    assert not stale.verified
    fresh = cache.still_current(stale)
    assert fresh is not None and fresh.verified and fresh.generation == cache.read_generation()
    assert fresh.get(("x",), load) == "value"
    assert len(loads) == 2
    assert cache.still_current(cache.view()) is None  # nothing changed since


@pytest.mark.django_db(transaction=True)
def test_noting_a_keys_use_does_not_empty_the_cache():
    """``last_used_at`` is written at most once a minute per key; it is not cached data."""
    user = UserFactory()
    key, raw_key = create_api_key(user=user, name="cache test")
    before = cache.read_generation()

    ApiKey.objects.filter(pk=key.pk).update(last_used_at=None)
    assert authenticate_api_key(raw_key) is not None  # writes last_used_at

    assert cache.read_generation() == before
    ApiKey.objects.filter(pk=key.pk).update(scopes=["read"])
    assert cache.read_generation() == before + 1


def test_with_the_cache_off_every_call_reads_the_database(gateway, upstream, make_funded_member, settings):
    settings.LLM_GATEWAY_CACHE = False
    _, user, _ = make_funded_member()
    key, raw_key = create_api_key(user=user, name="cache test")
    client = openai_client(gateway, raw_key)
    chat(client)

    revoke_api_key(key_id=key.pk, actor=None, actor_label="test")

    with pytest.raises(openai.AuthenticationError):
        chat(client)
