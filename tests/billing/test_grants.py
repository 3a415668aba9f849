"""Credit grants: every credit entering a pool is a grant; consumption burns them down by
priority, then soonest expiry, then oldest; refunds and reconciliation cover them."""

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.errors import AllocationExceedsPool
from billing.ledger.pool import take_back_unallocated_credits
from billing.models import CreditGrant, CreditPurchase, OrganizationCreditPool
from billing.selectors.grants import org_grants
from billing.selectors.reconciliation import find_all_drifts
from billing.services import add_credits_to_pool, allocate_credits_to_user, deduct_credits
from organizations.services import add_member
from orgbilling.errors import ValidationFailed
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db


def remaining_by_grant(org_id: str) -> dict[int, int]:
    return {view.grant_id: view.remaining_credits for view in org_grants(org_id=org_id)}


def funded_member(org=None):
    org = org or OrganizationFactory()
    user = UserFactory()
    add_member(org_id=org.id, user=user, actor_label="test")
    return org, user


def grant(org_id: str, credits: int, **terms) -> CreditGrant:
    change = add_credits_to_pool(org_id=org_id, amount=mc(credits), actor_label="test", **terms)
    assert change.grant is not None
    return change.grant


def spend(org_id: str, user, credits: int, request_id: str) -> None:
    allocate_credits_to_user(org_id=org_id, user=user, amount=mc(credits), actor_label="test")
    deduct_credits(user=user, org_id=org_id, amount=mc(credits), request_id=request_id, service_name="m")


# --- every entry point makes a grant --------------------------------------------------------


def test_adding_credits_creates_a_grant_linked_to_its_history_row():
    org = OrganizationFactory()
    change = add_credits_to_pool(org_id=org.id, amount=mc(50), purchase_amount="0.50", actor_label="test")

    grant = CreditGrant.objects.get(org=org)
    assert (grant.credits, grant.source, grant.history_id) == (mc(50), "purchase", change.history.pk)
    assert find_all_drifts(org.id) == []


def test_a_replayed_addition_creates_no_second_grant():
    org = OrganizationFactory()
    add_credits_to_pool(org_id=org.id, amount=mc(50), external_id="evt_1")
    again = add_credits_to_pool(org_id=org.id, amount=mc(50), external_id="evt_1")

    assert again.replayed
    assert CreditGrant.objects.filter(org=org).count() == 1


def test_a_promotion_with_expiry_and_priority_is_recorded():
    org = OrganizationFactory()
    expires = timezone.now() + timedelta(days=30)
    grant_row = grant(org.id, 10, source="promotion", expires_at=expires, priority=3)

    assert (grant_row.source, grant_row.expires_at, grant_row.priority) == ("promotion", expires, 3)


@pytest.mark.parametrize(
    "terms",
    [
        {"expires_at": timezone.now() - timedelta(seconds=1)},
        {"priority": -1},
        {"priority": 1001},
        {"source": "legacy"},
        {"source": "gift"},
    ],
)
def test_bad_grant_terms_are_refused_and_change_nothing(terms):
    org = OrganizationFactory()
    with pytest.raises(ValidationFailed):
        add_credits_to_pool(org_id=org.id, amount=mc(10), **terms)
    assert not CreditGrant.objects.filter(org=org).exists()
    assert OrganizationCreditPool.objects.filter(org=org, total_credits__gt=0).count() == 0


def test_the_legacy_migration_turns_each_pool_total_into_one_grant():
    # given: a pool that held credits before grants existed (its grants removed by hand)
    org, user = funded_member()
    grant(org.id, 100)
    allocate_credits_to_user(org_id=org.id, user=user, amount=mc(40), actor_label="test")
    deduct_credits(user=user, org_id=org.id, amount=mc(25), request_id="r1", service_name="m")
    CreditGrant.objects.filter(org=org).delete()
    assert find_all_drifts(org.id) != []

    # when
    importlib.import_module("billing.migrations.0027_credit_grants").legacy_grants(django_apps, None)

    # then
    legacy = CreditGrant.objects.get(org=org)
    assert (legacy.source, legacy.credits, legacy.consumed_credits) == ("legacy", mc(100), mc(25))
    assert find_all_drifts(org.id) == []


# --- burn-down order ------------------------------------------------------------------------


def test_a_lower_priority_number_burns_first():
    org, user = funded_member()
    late = grant(org.id, 100, priority=10)
    first = grant(org.id, 100, priority=1)

    spend(org.id, user, 30, "r1")

    assert remaining_by_grant(org.id) == {late.pk: mc(100), first.pk: mc(70)}


def test_at_equal_priority_the_soonest_expiry_burns_first_and_no_expiry_last():
    org, user = funded_member()
    now = timezone.now()
    never = grant(org.id, 100)
    later = grant(org.id, 100, expires_at=now + timedelta(days=20))
    sooner = grant(org.id, 100, expires_at=now + timedelta(days=10))

    spend(org.id, user, 150, "r1")

    assert remaining_by_grant(org.id) == {sooner.pk: 0, later.pk: mc(50), never.pk: mc(100)}


def test_at_equal_priority_and_expiry_the_oldest_burns_first():
    org, user = funded_member()
    old = grant(org.id, 100)
    new = grant(org.id, 100)

    spend(org.id, user, 120, "r1")

    assert remaining_by_grant(org.id) == {old.pk: 0, new.pk: mc(80)}


def test_a_grant_added_later_does_not_take_over_past_consumption():
    # given: 60 consumed from the only grant
    org, user = funded_member()
    old = grant(org.id, 100, priority=10)
    spend(org.id, user, 60, "r1")

    # when: a grant that burns first arrives, then 10 more are spent
    new = grant(org.id, 100, priority=1)
    spend(org.id, user, 10, "r2")

    # then: the 60 stay with the old grant; only the 10 burn the new one
    assert remaining_by_grant(org.id) == {old.pk: mc(40), new.pk: mc(90)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(
                st.just("grant"),
                st.integers(1, 500),
                st.integers(0, 3),
                st.one_of(st.none(), st.integers(1, 5)),
            ),
            st.tuples(st.just("spend"), st.integers(1, 400), st.just(0), st.none()),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_burn_down_matches_a_credit_by_credit_model(steps):
    """Each charge, credit by credit, burns the first grant in (priority, soonest expiry, oldest)
    order that has any left, among the grants that exist when it is charged."""
    org, user = funded_member()
    now = timezone.now()
    model: list[dict] = []  # in creation order
    for n, (kind, amount, priority, expiry_days) in enumerate(steps):
        if kind == "grant":
            expires_at = now + timedelta(days=expiry_days) if expiry_days else None
            row = grant(org.id, amount, priority=priority, expires_at=expires_at)
            model.append({"pk": row.pk, "left": mc(amount), "key": (priority, expiry_days or 10**6, n)})
            continue
        free = sum(g["left"] for g in model)
        cost = min(mc(amount), free)
        if cost == 0:
            continue
        allocate_credits_to_user(org_id=org.id, user=user, amount=cost, actor_label="test")
        deduct_credits(user=user, org_id=org.id, amount=cost, request_id=f"r{n}", service_name="m")
        for g in sorted(model, key=lambda g: g["key"]):
            take = min(cost, g["left"])
            g["left"] -= take
            cost -= take
    assert remaining_by_grant(org.id) == {g["pk"]: g["left"] for g in model}
    assert find_all_drifts(org.id) == []


# --- refunds and reconciliation -------------------------------------------------------------


def test_a_refund_takes_its_credits_from_the_purchase_grant_and_moves_its_usage_on():
    # given: a purchase that burns first (priority 0) and 30 of it consumed; a manual grant
    org, user = funded_member()
    purchase = CreditPurchase.objects.create(org=org, credits=mc(100), amount=Decimal("1.00"))
    bought = grant(org.id, 100, purchase=purchase, purchase_amount="1.00", priority=0)
    manual = grant(org.id, 200)
    spend(org.id, user, 30, "r1")

    # when: the purchase is refunded while the pool still holds 100 unallocated
    assert take_back_unallocated_credits(org_id=org.id, amount=mc(100), purchase=purchase) is not None

    # then: the purchase's grant counts nothing; its 30 consumed moved to the manual grant
    bought.refresh_from_db()
    assert (bought.refunded_credits, bought.capacity) == (mc(100), 0)
    assert remaining_by_grant(org.id) == {bought.pk: 0, manual.pk: mc(170)}


def test_reconciliation_reports_a_pool_total_its_grants_do_not_explain():
    org = OrganizationFactory()
    grant(org.id, 100)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE credit_grants SET credits = credits + 5 WHERE org_id = %s", [org.id])

    checks = {drift.check for drift in find_all_drifts(org.id)}

    assert {"pool_total_equals_sum_of_grants", "grant_matches_its_history"} <= checks


def test_reconciliation_reports_grant_usage_beyond_the_pools():
    org = OrganizationFactory()
    grant(org.id, 100)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE credit_grants SET consumed_credits = 1 WHERE org_id = %s", [org.id])

    assert [d.check for d in find_all_drifts(org.id)] == ["grants_consumed_within_pool_used"]


def test_allocation_is_still_bounded_by_the_pool_not_by_grants():
    org, user = funded_member()
    grant(org.id, 10)
    with pytest.raises(AllocationExceedsPool):
        allocate_credits_to_user(org_id=org.id, user=user, amount=mc(11))
