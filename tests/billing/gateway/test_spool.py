"""The settlement spool (billing/services/gateway_calls/spool.py): what it charges, once, and
what it sets aside."""

from pathlib import Path

import pytest

from billing.models import CreditReservation, CreditUsageAttribution, UserCreditAllocation
from billing.services import reserve_credits
from billing.services.gateway_calls import spool
from tests.helpers import mc


@pytest.fixture
def spool_dir(settings, tmp_path: Path) -> Path:
    settings.LLM_SETTLEMENT_SPOOL_DIR = str(tmp_path / "spool")
    return tmp_path / "spool"


def terms(reservation_id: int, request_id: str, amount: int) -> dict:
    return {
        "reservation_id": reservation_id,
        "actual_amount": amount,
        "service_type": "llm",
        "service_name": "spool-model",
        "input_tokens": 10,
        "output_tokens": 20,
        "metadata": {"request_id": request_id, "stream": True, "usage_source": "upstream"},
    }


def test_a_spooled_settlement_is_charged_once_however_often_it_is_spooled_and_settled(
    db, spool_dir: Path, make_funded_member
):
    # given: a held call whose settlement was spooled, then spooled again (a second refusal)
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    held = reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="spooled-1")
    assert spool.write_entry(terms(held.reservation_id, "spooled-1", mc(1))) is not None
    assert spool.write_entry(terms(held.reservation_id, "spooled-1", mc(1))) is not None

    # when: the spool is settled twice
    first, second = spool.settle_spooled(), spool.settle_spooled()

    # then
    assert (first.settled, second.settled) == ([held.reservation_id], [])
    row = CreditUsageAttribution.objects.get(request_id="spooled-1")
    assert (row.credits_used, row.input_tokens, row.output_tokens) == (mc(1), 10, 20)
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (mc(1), 0)
    assert CreditReservation.objects.get().status == CreditReservation.Status.SETTLED
    assert list(spool_dir.iterdir()) == []


def test_an_entry_naming_no_reservation_of_this_database_is_set_aside_not_charged(
    db, spool_dir: Path, make_funded_member
):
    # given: an entry whose reservation id exists here under another request id
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    held = reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="ours")
    spool.write_entry(terms(held.reservation_id, "from-another-database", mc(1)))

    # when
    outcome = spool.settle_spooled()

    # then: nothing charged, the hold untouched, the entry kept for an operator
    assert (outcome.settled, outcome.failed) == ([], [f"{held.reservation_id}.json"])
    assert not CreditUsageAttribution.objects.exists()
    assert UserCreditAllocation.objects.get(pk=allocation.pk).reserved_credits == mc(2)
    assert [path.name for path in spool_dir.iterdir()] == [f"{held.reservation_id}.json.failed"]
