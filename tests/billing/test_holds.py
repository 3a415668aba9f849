"""The SQL fast paths of reserve and settle (``billing.ledger.holds``): they apply to the
common case, and step aside (``NotApplied``, rolled back) for everything the ORM path must
explain, replay or settle differently."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from billing.ledger import holds
from billing.ledger.sql import NotApplied, ledger_cursor
from billing.models import CreditReservation, CreditUsageAttribution, IndividualCreditBalance
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_individual_credits,
    deduct_credits,
    reserve_credits,
    settle_reservation,
)
from tests.helpers import mc, snapshot_balances

pytestmark = pytest.mark.django_db


def _hold(*, org_id, user, amount, request_id):
    now = timezone.now()
    params = {"org_id": org_id, "user_id": user.pk, "amount": amount, "request_id": request_id,
              "now": now, "expires_at": now + timedelta(minutes=5)}  # fmt: skip
    with transaction.atomic(), ledger_cursor() as cursor:
        return holds.hold(cursor, params)


def _settle(reservation_id, amount):
    params = {"amount": amount, "service_type": "llm", "service_name": "m", "input_tokens": 1,
              "output_tokens": 2, "now": timezone.now(), "metadata": Jsonb({})}  # fmt: skip
    with transaction.atomic(), ledger_cursor() as cursor:
        return holds.settle(cursor, reservation_id, params)[1]


def test_a_hold_that_fits_is_taken_in_sql(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)

    reservation_id, free = _hold(org_id=org.id, user=user, amount=mc(4), request_id="fast-1")

    allocation.refresh_from_db()
    reservation = CreditReservation.objects.get(pk=reservation_id)
    assert (free, allocation.reserved_credits) == (mc(6), mc(4))
    assert (reservation.status, reservation.amount, reservation.allocation_id) == (
        "held",
        mc(4),
        allocation.pk,
    )
    assert find_all_drifts() == []


@pytest.mark.parametrize("case", ["too_big", "held_before", "charged_before", "suspended_member"])
def test_the_hold_steps_aside_and_changes_nothing(make_funded_member, case):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    amount = mc(11) if case == "too_big" else mc(1)
    if case == "held_before":
        reserve_credits(user=user, org_id=org.id, amount=mc(1), request_id="same")
    if case == "charged_before":
        deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="same")
    if case == "suspended_member":
        user.memberships.update(status="suspended")
    before = snapshot_balances()

    with pytest.raises(NotApplied):
        _hold(org_id=org.id, user=user, amount=amount, request_id="same")

    assert snapshot_balances() == before


def test_settling_in_sql_writes_what_the_orm_path_writes(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(4), request_id="same-rows")

    done = _settle(hold.reservation_id, mc("1.5"))

    row = CreditUsageAttribution.objects.get(pk=done.attribution_id)
    reservation = CreditReservation.objects.get(pk=hold.reservation_id)
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits, done.free) == (mc("1.5"), 0, mc("8.5"))
    assert (row.credits_used, row.balance_after, row.request_id) == (mc("1.5"), mc("8.5"), "same-rows")
    assert (reservation.status, reservation.credits_charged, reservation.attribution_id) == (
        "settled", mc("1.5"), row.pk,
    )  # fmt: skip
    assert find_all_drifts() == []


@pytest.mark.parametrize("case", ["settled", "above_free", "charged_under_same_id"])
def test_the_settlement_steps_aside_and_changes_nothing(make_funded_member, case):
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    hold = reserve_credits(user=user, org_id=org.id, amount=mc(4), request_id="s")
    amount = mc(11) if case == "above_free" else mc(1)
    if case == "settled":
        settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc(1))
    if case == "charged_under_same_id":
        deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="s")
    before = snapshot_balances()

    with pytest.raises(NotApplied):
        _settle(hold.reservation_id, amount)

    assert snapshot_balances() == before


def test_individual_credits_hold_and_settle_in_sql(make_funded_member):
    from tests.factories import UserFactory

    user = UserFactory()
    add_individual_credits(user=user, amount=mc(5), actor_label="test")

    reservation_id, free = _hold(org_id=None, user=user, amount=mc(2), request_id="solo")
    done = _settle(reservation_id, mc("0.5"))

    balance = IndividualCreditBalance.objects.get(user=user)
    assert free == mc(3)
    assert (balance.used_credits, balance.reserved_credits, done.free) == (mc("0.5"), 0, mc("4.5"))
    assert CreditUsageAttribution.objects.get(pk=done.attribution_id).org_id is None
    assert find_all_drifts() == []


@pytest.mark.parametrize("prepared", [True, False])
def test_the_gateways_reads_and_holds_agree_with_and_without_prepared_statements(
    settings, make_funded_member, prepared
):
    from decimal import Decimal

    from billing.pricing import ensure_model_price, price_for
    from billing.services import resolve_billing_context
    from organizations.services import authenticate_api_key, create_api_key

    settings.LEDGER_PREPARED_STATEMENTS = prepared
    org, user, allocation = make_funded_member(pool=100, allocation=10)
    raw_key = create_api_key(user=user, name="hot path", scopes=["write"])[1]
    ensure_model_price(model="hot-model", input_per_million=Decimal(1000), output_per_million=Decimal(2000),
                       image=Decimal("0.5"))  # fmt: skip
    for n in range(7):  # past psycopg's prepare threshold
        key = authenticate_api_key(raw_key)
        assert key is not None and (key.user, key.scopes) == (user, ["write"])
        assert resolve_billing_context(user=key.user).org_id == org.id
        price = price_for("hot-model")
        assert (price.input_credits_per_million, price.image_credits) == (Decimal(1000), Decimal("0.5"))
        hold = reserve_credits(user=user, org_id=org.id, amount=mc(1), request_id=f"hot-{n}")
        settle_reservation(reservation_id=hold.reservation_id, actual_amount=mc("0.5"))
    allocation.refresh_from_db()
    assert (allocation.used_credits, allocation.reserved_credits) == (mc("3.5"), 0)
    assert find_all_drifts() == []


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_is_replaced_not_failed_forever(make_funded_member):
    """The prepared reads run on a raw psycopg cursor: it must go through Django's health check
    and error wrapping, or one killed connection fails every later call on that thread."""
    import os

    import psycopg
    from django.db import OperationalError, close_old_connections, connection

    from organizations.services import authenticate_api_key, create_api_key

    _, user, _ = make_funded_member()
    raw_key = create_api_key(user=user, name="k")[1]
    connection.settings_dict["CONN_MAX_AGE"] = 60  # persistent, like the gateway's threads
    try:
        assert authenticate_api_key(raw_key) is not None
        backend_pid = connection.connection.info.backend_pid
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [backend_pid])

        with pytest.raises(OperationalError):  # Django's error (→ 503 in the API), not psycopg's
            authenticate_api_key(raw_key)
        close_old_connections()  # what the gateway's threads do between units
        assert authenticate_api_key(raw_key) is not None
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = 0
