"""The hot route on the event loop (``billing.gateway.on_loop``, ``billing.gateway.pg``): once
the process's cache is warm, a chat call is admitted and settled on psycopg's async pool with
one round trip each, without Django's connection (which refuses to run on the loop); anything
else goes back to the database threads."""

import asyncio

import pytest

from billing.gateway import on_loop, pg
from billing.gateway.admission import admit_chat
from billing.models import CreditReservation, CreditUsageAttribution
from billing.selectors.reconciliation import find_all_drifts
from billing.services.gateway_calls import cache
from billing.services.gateway_calls.holds import settle_call, settlement_terms
from orgbilling.errors import DatabaseUnavailable
from tests.billing.gateway.conftest import api_key, chat_request
from tests.round_trips import round_trips

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("model_price")]


def warm(settings, make_funded_member, **member):
    settings.LLM_GATEWAY_CACHE = True
    cache.clear()
    org, user, allocation = make_funded_member(**member)
    raw_key = api_key(user)
    admission, _, _ = admit_chat(chat_request(raw_key), byok=False)  # fills the cache, on a thread
    settle_call(admission, cost=1)
    return org, user, allocation, raw_key


async def _admit_and_settle(raw_key: str, cost: int):
    try:
        first = await on_loop.admit_chat(chat_request(raw_key))  # prepares the statements
        assert first is not None
        await on_loop.settle(settlement_terms(first[0], cost=cost))
        admitted = await on_loop.admit_chat(chat_request(raw_key))
        assert admitted is not None
        admission = admitted[0]
        async with pg._pool().connection() as conn:  # the pool's one connection, given back below
            pass
        with round_trips(conn) as settling:
            settled = await on_loop.settle(settlement_terms(admission, cost=cost, input_tokens=5))
        return admission, settled, settling.count
    finally:
        await pg.close_pools()


def test_a_warm_call_is_admitted_and_settled_on_the_loop(settings, make_funded_member):
    settings.LLM_GATEWAY_DB_POOL_SIZE = 1  # every statement on one connection: its trips are counted
    org, _, allocation, raw_key = warm(settings, make_funded_member)

    admission, settled, trips = asyncio.run(_admit_and_settle(raw_key, cost=7))

    assert settled is not None and settled.credits_charged == 7
    assert trips == 1
    assert CreditReservation.objects.get(pk=admission.reservation_id).status == "settled"
    row = CreditUsageAttribution.objects.get(pk=settled.attribution_id)
    assert (row.org_id, row.credits_used, row.input_tokens, row.request_id) == (
        org.id,
        7,
        5,
        admission.request_id,
    )
    allocation.refresh_from_db()
    assert allocation.reserved_credits == 0
    assert find_all_drifts() == []


def test_a_cold_process_or_a_refusal_to_explain_goes_to_the_threads(settings, make_funded_member):
    settings.LLM_GATEWAY_CACHE = True
    cache.clear()
    _, user, _ = make_funded_member(allocation=1)
    raw_key = api_key(user)

    async def attempt(max_tokens: int):
        try:
            return await on_loop.admit_chat(chat_request(raw_key, max_tokens))
        finally:
            await pg.close_pools()

    assert asyncio.run(attempt(16)) is None  # nothing cached yet: no read on the loop
    warm_admission, _, _ = admit_chat(chat_request(raw_key), byok=False)
    settle_call(warm_admission, cost=1)
    # a hold the allocation cannot cover: the threads say why (insufficient credits)
    assert asyncio.run(attempt(100_000)) is None
    assert CreditReservation.objects.filter(status="held").count() == 0


def test_a_database_the_pool_cannot_reach_answers_the_503_refusal(settings, make_funded_member):
    from django.db import connection

    _, _, _, raw_key = warm(settings, make_funded_member)
    settings.DB_POOL_TIMEOUT = 0.5
    port = connection.settings_dict["PORT"]

    async def attempt():
        connection.settings_dict["PORT"] = "1"  # nothing listens there
        try:
            await on_loop.admit_chat(chat_request(raw_key))
        finally:
            connection.settings_dict["PORT"] = port
            await pg.close_pools()

    with pytest.raises(DatabaseUnavailable):
        asyncio.run(attempt())


def test_a_connection_the_server_ended_while_pooled_is_replaced_not_answered_with_a_503(
    settings, make_funded_member
):
    import psycopg

    settings.LLM_GATEWAY_DB_POOL_SIZE = 1
    _, _, allocation, raw_key = warm(settings, make_funded_member)

    def terminate(pid: int) -> None:  # as a restart, a failover or an idle timeout would
        with psycopg.connect(**pg.connection_parameters()) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    async def attempt():
        try:
            first = await on_loop.admit_chat(chat_request(raw_key))
            assert first is not None
            await on_loop.settle(settlement_terms(first[0], cost=2))
            async with pg._pool().connection() as conn:  # the pool's one connection
                pid = conn.info.backend_pid
            await asyncio.to_thread(terminate, pid)
            await asyncio.sleep(0.2)  # the notice and the end of the stream arrive
            second = await on_loop.admit_chat(chat_request(raw_key))
            assert second is not None
            await on_loop.settle(settlement_terms(second[0], cost=3))
            async with pg._pool().connection() as conn:
                return pid, conn.info.backend_pid
        finally:
            await pg.close_pools()

    ended, replacement = asyncio.run(attempt())

    assert replacement != ended
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (1 + 2 + 3, 0)
    assert find_all_drifts() == []
