"""The task on open records left by a process that died
(billing/services/gateway_calls/open_calls.py): each charged its estimate once, or deleted when
its call is owed nothing (issue 11 §2)."""

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from billing import tasks
from billing.models import CreditUsageAttribution, UserCreditAllocation
from billing.pricing import PriceSnapshot
from billing.selectors.reconciliation import find_all_drifts
from billing.services import release_reservation, reserve_credits
from billing.services.gateway_calls import open_calls
from billing.services.gateway_calls import spool as settlement_spool
from billing.services.gateway_calls.holds import Admission, settlement_terms
from tests.billing.gateway.conftest import MODEL
from tests.billing.gateway.open_records import age, records
from tests.billing.gateway.test_chat import expected_cost
from tests.helpers import mc

pytestmark = pytest.mark.usefixtures("model_price")


@pytest.fixture
def spool(settings, tmp_path: Path) -> Path:
    settings.LLM_SETTLEMENT_SPOOL_DIR = str(tmp_path / "spool")
    return tmp_path / "spool"


def held_call(user, org, *, request_id: str, reasoning: bool = False) -> Admission:
    held = reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id=request_id)
    return Admission(
        request_id=request_id,
        user=user,
        org_id=org.id,
        api_key_id=None,
        model=MODEL,
        price=PriceSnapshot(MODEL, Decimal("150"), Decimal("600"), Decimal("4"), 1000),
        reservation_id=held.reservation_id,
        held=held.amount,
        remaining_after_hold=held.remaining_credits,
        byok=False,
        service_type="llm",
        estimated_input_tokens=30,
        quota=None,
        output_bound=1000,
        reasoning_model=reasoning,
    )


def test_a_lost_calls_record_is_charged_its_estimate_once_however_often_the_task_runs(
    db, spool, make_funded_member
):
    # given: two calls whose process died, one 25 tokens into its output, one reasoning
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    plain = held_call(user, org, request_id="lost-plain")
    thinking = held_call(user, org, request_id="lost-reasoning", reasoning=True)
    open_calls.open_call(plain)
    open_calls.open_call(thinking)
    open_calls.record_progress(
        plain, limit_from=plain.admitted_at, progress=open_calls.Progress(output_tokens=25)
    )
    for path in records(spool):
        age(path, 3600)

    # when: the task runs twice
    first, second = tasks.settle_spooled_calls(), tasks.settle_spooled_calls()

    # then: each charged once, with its estimate
    assert (first, second) == ({"settled": 2, "failed": []}, {"settled": 0, "failed": []})
    rows = {row.request_id: row for row in CreditUsageAttribution.objects.all()}
    assert (rows["lost-plain"].input_tokens, rows["lost-plain"].output_tokens) == (30, 25)
    assert rows["lost-plain"].credits_used == expected_cost(30, 25)
    assert (rows["lost-reasoning"].input_tokens, rows["lost-reasoning"].output_tokens) == (30, 1000)
    assert rows["lost-reasoning"].credits_used == expected_cost(30, 1000)
    assert {row.request_metadata["usage_source"] for row in rows.values()} == {"process_lost"}
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (
        expected_cost(30, 25) + expected_cost(30, 1000),
        0,
    )
    assert records(spool) == []
    assert find_all_drifts() == []


def test_a_lost_record_whose_hold_was_released_is_deleted_and_charges_nothing(db, spool, make_funded_member):
    # given: an old record whose call was released (its process died before removing it)
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    call = held_call(user, org, request_id="released-call")
    open_calls.open_call(call)
    release_reservation(reservation_id=call.reservation_id)
    age(records(spool)[0], 3600)

    # when
    outcome = tasks.settle_spooled_calls()

    # then
    assert outcome == {"settled": 0, "failed": []}
    assert records(spool) == []
    assert not CreditUsageAttribution.objects.exists()
    assert UserCreditAllocation.objects.get(pk=allocation.pk).used_credits == 0


def test_a_lost_record_defers_to_the_spooled_settlement_of_the_same_call(db, spool, make_funded_member):
    # given: a call whose settlement was refused and spooled, the process dying before it
    # removed the call's open record
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    call = held_call(user, org, request_id="spooled-and-open")
    open_calls.open_call(call)
    age(records(spool)[0], 3600)
    terms = settlement_terms(
        call, cost=expected_cost(7, 9), input_tokens=7, output_tokens=9, metadata={"usage_source": "upstream"}
    )
    assert settlement_spool.write_entry(terms) is not None

    # when
    outcome = tasks.settle_spooled_calls()

    # then: charged once, with the spooled (upstream's) usage; both files gone
    assert outcome == {"settled": 1, "failed": []}
    row = CreditUsageAttribution.objects.get()
    assert (row.input_tokens, row.output_tokens, row.request_metadata["usage_source"]) == (7, 9, "upstream")
    assert list(spool.iterdir()) == []


def test_the_command_lists_open_records_and_charges_the_lost_ones(db, spool, make_funded_member):
    # given: a lost call's record, and a young one (its call may be running)
    org, user, _ = make_funded_member(pool=100, allocation=10)
    lost, running = held_call(user, org, request_id="lost"), held_call(user, org, request_id="running")
    open_calls.open_call(lost)
    open_calls.open_call(running)
    age(open_calls.record_path(lost.reservation_id), 3600)

    # when
    listed, charged = StringIO(), StringIO()
    call_command("settle_spooled_calls", "--list", stdout=listed)
    call_command("settle_spooled_calls", stdout=charged)

    # then: both listed; only the lost one charged, the young one kept
    assert sorted(listed.getvalue().split()) == sorted(
        str(open_calls.record_path(call.reservation_id)) for call in (lost, running)
    )
    assert "1 spooled settlement(s) charged" in charged.getvalue()
    assert "1 of them calls whose process died" in charged.getvalue()
    assert list(CreditUsageAttribution.objects.values_list("request_id", flat=True)) == ["lost"]
    assert records(spool) == [open_calls.record_path(running.reservation_id)]
