"""The individual credits' ledger: every change to a balance's total is an entry, the
reconciliation reports a total its entries do not explain, and migration 0028 opens the ledger
of balances from before it."""

import importlib

import pytest
from django.apps import apps as django_apps

from billing.models import IndividualCreditBalance, IndividualCreditEntry
from billing.selectors.reconciliation import Drift, find_all_drifts
from billing.services import add_individual_credits
from tests.factories import UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db

CHECK = "individual_total_equals_sum_of_entries"


def opening_entries() -> None:
    importlib.import_module("billing.migrations.0028_individual_opening_entries").opening_entries(
        django_apps, None
    )


def test_a_total_changed_behind_the_ledger_is_reported_as_a_drift():
    user = UserFactory()
    add_individual_credits(user=user, amount=mc(20), actor_label="test")
    assert find_all_drifts() == []

    IndividualCreditBalance.objects.filter(user=user).update(total_credits=mc(25))

    assert find_all_drifts() == [
        Drift(
            check=CHECK,
            org_id=None,
            target=f"individual balance of user {user.pk}",
            expected=mc(20),
            actual=mc(25),
        )
    ]


def test_the_migration_opens_the_ledger_of_balances_from_before_it_once():
    # given: a balance with no entries, one whose total grew behind its entries, one that agrees
    before_ledger, grown, agreeing = UserFactory(), UserFactory(), UserFactory()
    IndividualCreditBalance.objects.create(user=before_ledger, total_credits=mc(30))
    add_individual_credits(user=grown, amount=mc(10), actor_label="test")
    IndividualCreditBalance.objects.filter(user=grown).update(total_credits=mc(15))
    add_individual_credits(user=agreeing, amount=mc(7), actor_label="test")
    assert {d.target for d in find_all_drifts() if d.check == CHECK} == {
        f"individual balance of user {before_ledger.pk}",
        f"individual balance of user {grown.pk}",
    }

    # when: the migration runs (twice: a replay writes nothing)
    opening_entries()
    opening_entries()

    # then
    openings = IndividualCreditEntry.objects.filter(kind=IndividualCreditEntry.Kind.OPENING)
    assert sorted(openings.values_list("user_id", "credits", "total_after", "external_id")) == sorted(
        [
            (before_ledger.pk, mc(30), mc(30), f"individual-opening:{before_ledger.pk}"),
            (grown.pk, mc(5), mc(15), f"individual-opening:{grown.pk}"),
        ]
    )
    assert find_all_drifts() == []
