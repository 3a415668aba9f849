"""The ledger's fast paths as SQL functions (``billing.ledger.functions``, migration 0023): one
round trip each, written from the spending rule's one source, and still exact under
concurrency."""

import pytest
from django.db import connection

from billing.errors import InsufficientCredits
from billing.ledger.eligibility import ACTIVE_ORG, SPENDABLE_ALLOCATION, SPENDABLE_INDIVIDUAL
from billing.ledger.functions import FUNCTIONS, plpgsql
from billing.ledger.holds import GenerationMoved
from billing.models import AuditEvent, CreditReservation, CreditUsageAttribution, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import release_reservation, reserve_credits, settle_reservation
from billing.services.gateway_calls import cache
from tests.concurrency import run_concurrently
from tests.helpers import mc, snapshot_balances
from tests.round_trips import django_round_trips


@pytest.mark.django_db
def test_the_installed_functions_are_the_ones_written_from_the_rule():
    """A change to the rule or to a fast path's statement needs a migration that installs it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT proname, prosrc FROM pg_proc WHERE proname = ANY(%s)", [list(FUNCTIONS)])
        installed = dict(cursor.fetchall())
    assert set(installed) == set(FUNCTIONS)
    for name, (_, body) in FUNCTIONS.items():
        assert installed[name].strip() == body.strip(), f"{name}: add a migration installing the new body"


def test_the_hold_function_is_written_from_the_eligibility_fragments():
    hold_body = FUNCTIONS["ledger_hold"][1]
    flat = " ".join(hold_body.split())
    for fragment in (SPENDABLE_ALLOCATION, ACTIVE_ORG, SPENDABLE_INDIVIDUAL):
        assert " ".join(plpgsql(fragment).split()) in flat


@pytest.mark.django_db(transaction=True)
def test_a_hold_and_its_settlement_are_one_round_trip_each(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    warm = reserve_credits(user=user, org_id=org.id, amount=mc(1), request_id="warm")  # prepares
    settle_reservation(reservation_id=warm.reservation_id, actual_amount=mc(1))

    with django_round_trips() as holding:
        held = reserve_credits(user=user, org_id=org.id, amount=mc(2), request_id="one-trip")
    with django_round_trips() as settling:
        done = settle_reservation(reservation_id=held.reservation_id, actual_amount=mc("1.5"))

    assert (holding.count, settling.count) == (1, 1)
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits, done.remaining_credits) == (
        mc("2.5"),
        0,
        mc("7.5"),
    )
    row = CreditUsageAttribution.objects.get(pk=done.attribution_id)
    assert row.request_metadata == {
        "reservation_id": held.reservation_id,
        "held_credits": mc(2),
        "requested_credits": mc("1.5"),
    }
    assert find_all_drifts() == []


@pytest.mark.django_db(transaction=True)
def test_a_hold_under_a_generation_that_moved_holds_nothing(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    current = cache.read_generation()
    assert current is not None
    before = snapshot_balances()

    with pytest.raises(GenerationMoved) as moved:
        reserve_credits(
            user=user, org_id=org.id, amount=mc(1), request_id="stale", cache_generation=current - 1
        )

    assert moved.value.generation == current
    assert snapshot_balances() == before
    assert not CreditReservation.objects.filter(request_id="stale").exists()
    held = reserve_credits(
        user=user, org_id=org.id, amount=mc(1), request_id="stale", cache_generation=current
    )
    release_reservation(reservation_id=held.reservation_id)


@pytest.mark.django_db(transaction=True)
def test_a_refused_hold_under_a_current_generation_still_says_why(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=10)
    with pytest.raises(InsufficientCredits):
        reserve_credits(
            user=user,
            org_id=org.id,
            amount=mc(11),
            request_id="big",
            cache_generation=cache.read_generation(),
        )


@pytest.mark.django_db(transaction=True)
def test_a_settlement_crossing_the_exhaustion_threshold_is_charged_and_audited_once(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    held = reserve_credits(user=user, org_id=org.id, amount=mc(10), request_id="to-the-brim")

    done = settle_reservation(reservation_id=held.reservation_id, actual_amount=mc("9.5"))

    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits, done.credits_charged) == (
        mc("9.5"),
        0,
        mc("9.5"),
    )
    assert AuditEvent.objects.filter(action="allocation.exhausted", org_id=org.id).count() == 1
    assert find_all_drifts() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_and_settlements_never_overdraw(make_funded_member):
    """Twenty threads, each on its own connection, hold 1 credit and settle 1 against an
    allocation of 10: exactly ten are held and charged, nothing more."""
    org, user, _ = make_funded_member(pool=100, allocation=10)

    def call(index: int) -> str:
        try:
            held = reserve_credits(user=user, org_id=org.id, amount=mc(1), request_id=f"race-{index}")
        except InsufficientCredits:
            return "refused"
        settle_reservation(reservation_id=held.reservation_id, actual_amount=mc(1))
        return "charged"

    outcomes = run_concurrently(call, 20)

    assert sorted(outcomes) == ["charged"] * 10 + ["refused"] * 10
    allocation = UserCreditAllocation.objects.get(org=org, user=user)
    assert (allocation.used_credits, allocation.reserved_credits) == (mc(10), 0)
    assert CreditUsageAttribution.objects.filter(org=org).count() == 10
    assert find_all_drifts() == []
