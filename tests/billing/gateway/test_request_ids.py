"""A gateway call's ledger id is the caller's ``X-Request-Id`` (or a generated one): one id, one
call. Reusing an id can never make two upstream calls settle as one charge."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from billing.models import CreditReservation, CreditUsageAttribution
from billing.selectors.reconciliation import find_all_drifts
from tests.billing.gateway.conftest import MODEL, api_key

pytestmark = pytest.mark.usefixtures("model_price")


def call(gateway, key: str, request_id: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.llm_url}/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 20},
        headers={"Authorization": f"Bearer {key}", "X-Request-Id": request_id},
        timeout=30,
    )


def test_two_calls_in_flight_with_one_request_id_are_one_call_and_one_refusal(
    gateway, upstream, make_funded_member
):
    # given: a slow upstream, so both calls are in flight at once
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    key = api_key(user)
    upstream.behaviour.latency = 0.6
    # when
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: call(gateway, key, "same-id-1"), range(2)))
    # then: one completion, one 409, one upstream call, one charge
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["error"]["code"] == "request_id_conflict"
    assert len(upstream.behaviour.requests) == 1
    assert CreditUsageAttribution.objects.filter(request_id="same-id-1").count() == 1
    assert not CreditReservation.objects.filter(status=CreditReservation.Status.HELD).exists()
    assert find_all_drifts() == []


def test_an_id_that_was_charged_is_refused_without_calling_the_upstream(
    gateway, upstream, make_funded_member
):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    key = api_key(user)
    assert call(gateway, key, "once-1").status_code == 200

    again = call(gateway, key, "once-1")

    assert again.status_code == 409 and again.json()["error"]["code"] == "request_id_conflict"
    assert len(upstream.behaviour.requests) == 1
    assert CreditUsageAttribution.objects.filter(request_id="once-1").count() == 1
