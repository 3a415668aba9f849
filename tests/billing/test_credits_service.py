"""billing.services.credits: the one "system admins grant, org admins buy" rule, without a view."""

from decimal import Decimal

import pytest

from billing.models import CreditPurchase
from billing.services.credits import CreditsGranted, credits_add
from organizations.permissions import org_admin_access
from orgbilling.errors import ValidationFailed
from tests.helpers import mc, pool_of, snapshot_balances

pytestmark = pytest.mark.django_db


def _add(access, actor, **given):
    fields = {"credits": None, "amount_usd": None, "purchase_amount": None, "description": None}
    return credits_add(access=access, actor=actor, **{**fields, **given})


def test_a_system_admin_grants_at_once(team, staff_user):
    access = org_admin_access(user=staff_user, org_id=team.org.id)
    before = pool_of(team.org).total_credits

    result = _add(access, staff_user, credits=mc(25), description="goodwill")

    assert isinstance(result, CreditsGranted)
    assert result.credits == mc(25)
    assert pool_of(team.org).total_credits == before + mc(25)
    assert not CreditPurchase.objects.exists()


def test_a_system_admin_naming_only_dollars_is_refused_and_nothing_is_written(team, staff_user):
    access = org_admin_access(user=staff_user, org_id=team.org.id)
    before = snapshot_balances()

    with pytest.raises(ValidationFailed) as refused:
        _add(access, staff_user, amount_usd=Decimal("10"))

    assert refused.value.details == {"credits": "required"}
    assert snapshot_balances() == before


@pytest.mark.parametrize(
    ("given", "refused_fields"),
    [
        ({"purchase_amount": Decimal("50")}, {"purchase_amount"}),
        ({"description": ""}, {"description"}),  # present though blank: still a grant's field
        ({"purchase_amount": Decimal("50"), "description": "x"}, {"purchase_amount", "description"}),
    ],
)
def test_an_org_admin_naming_a_grants_fields_is_refused_before_any_checkout(team, given, refused_fields):
    access = org_admin_access(user=team.admin, org_id=team.org.id)
    before = snapshot_balances()

    with pytest.raises(ValidationFailed) as refused:
        _add(access, team.admin, credits=mc(10), **given)

    assert set(refused.value.details) == refused_fields
    assert snapshot_balances() == before
    assert not CreditPurchase.objects.exists()
