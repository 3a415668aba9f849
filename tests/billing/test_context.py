"""resolve_billing_context: explicit org, default org, oldest membership, individual fallback."""

import pytest

from billing.errors import NotAMember, OrganizationInactive
from billing.services import resolve_billing_context
from organizations.models import Organization, OrganizationMember
from organizations.services import add_member, set_default_organization
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_user_without_organization_falls_back_to_individual_credits():
    context = resolve_billing_context(user=UserFactory())
    assert context.is_individual
    assert context.source == "individual"


def test_oldest_active_membership_pays_when_no_default():
    user = UserFactory()
    first, second = OrganizationFactory(), OrganizationFactory()
    add_member(org_id=first.id, user=user)
    add_member(org_id=second.id, user=user)
    context = resolve_billing_context(user=user)
    assert (context.org_id, context.source) == (first.id, "oldest")


def test_default_membership_wins_over_oldest():
    user = UserFactory()
    first, second = OrganizationFactory(), OrganizationFactory()
    add_member(org_id=first.id, user=user)
    add_member(org_id=second.id, user=user)
    set_default_organization(user=user, org_id=second.id)
    context = resolve_billing_context(user=user)
    assert (context.org_id, context.source) == (second.id, "default")
    assert OrganizationMember.objects.filter(user=user, is_default=True).count() == 1


def test_explicit_org_must_be_an_active_membership():
    user = UserFactory()
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    add_member(org_id=mine.id, user=user)
    assert resolve_billing_context(user=user, requested_org_id=mine.id).source == "explicit"
    with pytest.raises(NotAMember):
        resolve_billing_context(user=user, requested_org_id=theirs.id)
    with pytest.raises(NotAMember):
        resolve_billing_context(user=user, requested_org_id="does-not-exist")
    OrganizationMember.objects.filter(user=user, org=mine).update(status="suspended")
    with pytest.raises(NotAMember):
        resolve_billing_context(user=user, requested_org_id=mine.id)


def test_a_suspended_member_is_refused_not_moved_to_individual_credits():
    user = UserFactory()
    org = OrganizationFactory()
    add_member(org_id=org.id, user=user)
    OrganizationMember.objects.filter(user=user).update(status="suspended")
    with pytest.raises(NotAMember):
        resolve_billing_context(user=user)


def test_unusable_default_org_is_refused_not_billed_elsewhere():
    user = UserFactory()
    client_a, client_b = OrganizationFactory(), OrganizationFactory()
    add_member(org_id=client_a.id, user=user)
    add_member(org_id=client_b.id, user=user)
    set_default_organization(user=user, org_id=client_a.id)
    Organization.objects.filter(pk=client_a.pk).update(is_active=False)
    with pytest.raises(OrganizationInactive):
        resolve_billing_context(user=user)
    with pytest.raises(OrganizationInactive):
        resolve_billing_context(user=user, requested_org_id=client_a.id)
    assert resolve_billing_context(user=user, requested_org_id=client_b.id).org_id == client_b.id


def test_unusable_oldest_org_is_refused_not_billed_elsewhere():
    user = UserFactory()
    old, new = OrganizationFactory(), OrganizationFactory()
    add_member(org_id=old.id, user=user)
    add_member(org_id=new.id, user=user)
    Organization.objects.filter(pk=old.pk).update(is_active=False)
    with pytest.raises(OrganizationInactive):
        resolve_billing_context(user=user)
