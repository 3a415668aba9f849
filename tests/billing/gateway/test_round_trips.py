"""The gateway's two database units, admission and settlement, are one round trip to
PostgreSQL each once the process's cache is warm (``ledger_hold`` checks the cache generation
in the statement that takes the hold), and the cache still never answers from a stale entry."""

import pytest
from rest_framework.exceptions import PermissionDenied

from billing.gateway.admission import admit_chat
from billing.models import CreditUsageAttribution
from billing.selectors.reconciliation import find_all_drifts
from billing.services.gateway_calls import cache
from billing.services.gateway_calls.holds import settle_call
from organizations.models import ApiKey
from tests.billing.gateway.conftest import api_key, chat_request
from tests.round_trips import django_round_trips

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("model_price")]


def test_admission_and_settlement_are_one_round_trip_each_once_warm(settings, make_funded_member):
    settings.LLM_GATEWAY_CACHE = True
    cache.clear()
    _, user, _ = make_funded_member()
    raw_key = api_key(user)
    for _ in range(2):  # the first call reads the key, payer and price and prepares the statements
        admission, _, _ = admit_chat(chat_request(raw_key), byok=False)
        settle_call(admission, cost=10, input_tokens=3, output_tokens=4)

    with django_round_trips() as admitting:
        admission, _, _ = admit_chat(chat_request(raw_key), byok=False)
    with django_round_trips() as settling:
        settled = settle_call(admission, cost=10, input_tokens=3, output_tokens=4)

    assert (admitting.count, settling.count) == (1, 1), admitting.messages + settling.messages
    assert CreditUsageAttribution.objects.get(pk=settled.attribution_id).credits_used == 10
    assert find_all_drifts() == []


def test_a_refusal_from_a_cached_entry_is_checked_against_the_current_generation(
    settings, make_funded_member
):
    """The key is cached with the read scope only; once write is granted, the very next call
    is admitted, although it starts from the entry cached before the change."""
    settings.LLM_GATEWAY_CACHE = True
    cache.clear()
    _, user, _ = make_funded_member()
    raw_key = api_key(user, scopes=["read"])
    with pytest.raises(PermissionDenied):
        admit_chat(chat_request(raw_key), byok=False)

    ApiKey.objects.filter(user=user).update(scopes=["read", "write"])

    admission, _, _ = admit_chat(chat_request(raw_key), byok=False)
    assert admission.held > 0


def test_a_call_whose_payer_changed_since_the_cache_was_filled_is_held_under_the_new_one(
    settings, make_funded_member
):
    """Suspended after the payer was cached: the hold finds the generation moved, the call
    reads again and is refused before anything is held."""
    from billing.errors import NoAllocation
    from organizations.models import OrganizationMember
    from orgbilling.errors import ApplicationError

    settings.LLM_GATEWAY_CACHE = True
    cache.clear()
    org, user, _ = make_funded_member()
    raw_key = api_key(user)
    admission, _, _ = admit_chat(chat_request(raw_key), byok=False)
    settle_call(admission, cost=10)

    OrganizationMember.objects.filter(org=org, user=user).update(status="suspended")

    with pytest.raises(ApplicationError) as refused:
        admit_chat(chat_request(raw_key), byok=False)
    assert refused.value.code in {NoAllocation.code, "not_a_member", "organization_not_found"}
    assert CreditUsageAttribution.objects.filter(org=org).count() == 1
