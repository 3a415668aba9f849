"""``record_past_usage``: usage that already happened, appended in bulk with its balances."""

from datetime import UTC, datetime

import pytest

from billing.errors import InsufficientCredits, NoActiveAllocation
from billing.models import CreditUsageAttribution
from billing.services import PastCharge, record_past_usage
from tests.factories import UserFactory
from tests.helpers import mc, pool_of, snapshot_balances

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 1, 9, tzinfo=UTC)


def test_past_charges_keep_their_dates_and_raise_the_balances(make_funded_member) -> None:
    org, user, allocation = make_funded_member(pool=1000, allocation=100)

    written = record_past_usage(
        org_id=org.id,
        charges=[
            PastCharge(user_id=user.pk, amount=mc(10), request_id="h1", at=AT, service_name="m"),
            PastCharge(user_id=user.pk, amount=mc("2.5"), request_id="h2", at=AT.replace(day=2)),
        ],
    )

    assert written == 2
    allocation.refresh_from_db()
    assert allocation.used_credits == mc("12.5")
    assert pool_of(org).used_credits == mc("12.5")
    rows = CreditUsageAttribution.objects.filter(org=org).order_by("created_at")
    assert [r.created_at for r in rows] == [AT, AT.replace(day=2)]
    assert [r.balance_after for r in rows] == [mc(90), mc("87.5")]


def test_a_replayed_batch_charges_nothing(make_funded_member) -> None:
    org, user, _ = make_funded_member(pool=1000, allocation=100)
    charges = [PastCharge(user_id=user.pk, amount=mc(10), request_id="h1", at=AT)]
    record_past_usage(org_id=org.id, charges=charges)
    before = snapshot_balances()

    assert record_past_usage(org_id=org.id, charges=charges) == 0
    assert snapshot_balances() == before


def test_a_batch_beyond_a_members_free_credits_writes_nothing(make_funded_member) -> None:
    org, user, _ = make_funded_member(pool=1000, allocation=100)
    before = snapshot_balances()

    with pytest.raises(InsufficientCredits):
        record_past_usage(
            org_id=org.id,
            charges=[
                PastCharge(user_id=user.pk, amount=mc(60), request_id="h1", at=AT),
                PastCharge(user_id=user.pk, amount=mc(60), request_id="h2", at=AT),
            ],
        )

    assert snapshot_balances() == before
    assert not CreditUsageAttribution.objects.exists()


def test_a_charge_for_someone_without_an_allocation_fails_the_batch(make_funded_member) -> None:
    org, user, _ = make_funded_member(pool=1000, allocation=100)

    with pytest.raises(NoActiveAllocation):
        record_past_usage(
            org_id=org.id,
            charges=[
                PastCharge(user_id=user.pk, amount=mc(1), request_id="h1", at=AT),
                PastCharge(user_id=UserFactory().pk, amount=mc(1), request_id="h2", at=AT),
            ],
        )

    assert not CreditUsageAttribution.objects.exists()
