"""billing.permissions: who may change an organization's auto top-up."""

import pytest

from billing.errors import OrganizationNotFound
from billing.permissions import auto_topup_manager_access
from organizations.services import add_member
from orgbilling.errors import Forbidden
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_orgs_own_admin_manages_auto_topup(team):
    assert auto_topup_manager_access(user=team.admin, org_id=team.org.id).role == "admin"


def test_a_system_admin_who_is_not_the_orgs_admin_may_not_set_auto_topup(team, staff_user):
    with pytest.raises(Forbidden) as refused:
        auto_topup_manager_access(user=staff_user, org_id=team.org.id)

    assert refused.value.details == {"org_id": team.org.id}


def test_a_system_admin_who_is_only_a_member_may_not_set_auto_topup(team):
    ops = UserFactory(is_staff=True)
    add_member(org_id=team.org.id, user=ops, role="member")

    with pytest.raises(Forbidden):
        auto_topup_manager_access(user=ops, org_id=team.org.id)


def test_a_system_admin_who_administers_the_org_may_set_auto_topup(team):
    ops = UserFactory(is_staff=True)
    add_member(org_id=team.org.id, user=ops, role="admin")

    access = auto_topup_manager_access(user=ops, org_id=team.org.id)

    assert access.role == "system_admin" and access.org == team.org


@pytest.mark.parametrize("who", ["member", "outsider"])
def test_members_get_403_and_outsiders_404_first(team, who):
    expected = Forbidden if who == "member" else OrganizationNotFound
    with pytest.raises(expected):
        auto_topup_manager_access(user=getattr(team, who), org_id=team.org.id)
