"""Membership services: add, change role, suspend/reactivate, remove, default org; the org
always keeps an active admin, also under real concurrency."""

import pytest

from billing.errors import (
    AllocationHasHolds,
    NotAMember,
    OrganizationInactive,
    OrganizationNotFound,
)
from billing.models import AuditEvent, CreditUsageAttribution, OrganizationCreditPool, UserCreditAllocation
from billing.selectors.reconciliation import find_all_drifts
from billing.services import (
    add_credits_to_pool,
    allocate_credits_to_user,
    deduct_credits,
    reserve_credits,
)
from organizations.errors import AlreadyMember, LastAdmin, MemberNotFound
from organizations.models import Organization, OrganizationMember
from organizations.services import (
    Invitation,
    add_member,
    change_member_role,
    invite_or_add_member,
    remove_member,
    set_default_organization,
    set_member_status,
    update_member,
    update_organization,
)
from orgbilling.errors import Conflict, Forbidden, ValidationFailed
from tests.concurrency import run_concurrently
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, snapshot_balances

db = pytest.mark.django_db


def _org_with_admin():
    admin = UserFactory()
    org = OrganizationFactory(created_by=admin)
    return org, admin


def _membership(org, user) -> OrganizationMember:
    return OrganizationMember.objects.get(org=org, user=user)


def _actions(org) -> list[str]:
    return list(AuditEvent.objects.filter(org_id=org.id).order_by("pk").values_list("action", flat=True))


# add_member --------------------------------------------------------------------------------


@db
def test_adding_an_existing_member_again_is_already_member():
    org, admin = _org_with_admin()

    with pytest.raises(AlreadyMember) as caught:
        add_member(org_id=org.id, user=admin)

    assert isinstance(caught.value, Conflict)
    assert (caught.value.code, caught.value.status_code) == ("already_member", 409)


@db
def test_adding_a_suspended_member_again_is_already_member():
    org, _ = _org_with_admin()
    user = UserFactory()
    add_member(org_id=org.id, user=user)
    set_member_status(org_id=org.id, user=user, status="suspended")

    with pytest.raises(AlreadyMember):
        add_member(org_id=org.id, user=user)


@db
def test_a_member_can_be_added_as_admin():
    org, _ = _org_with_admin()
    user = UserFactory()

    member = add_member(org_id=org.id, user=user, role="admin")

    assert (member.role, member.status) == ("admin", "active")


# change_member_role ------------------------------------------------------------------------


@db
def test_promoting_and_demoting_a_member_is_audited():
    org, admin = _org_with_admin()
    user = UserFactory()
    add_member(org_id=org.id, user=user)

    change_member_role(org_id=org.id, user=user, role="admin", actor=admin)
    change_member_role(org_id=org.id, user=admin, role="member", actor=user)

    assert _membership(org, user).role == "admin"
    assert _membership(org, admin).role == "member"
    events = AuditEvent.objects.filter(org_id=org.id, action="member.role_changed").order_by("pk")
    assert [(e.target_id, e.metadata) for e in events] == [
        (user.username, {"from": "member", "to": "admin"}),
        (admin.username, {"from": "admin", "to": "member"}),
    ]
    assert events[0].actor == admin


@db
def test_demoting_the_last_active_admin_is_refused_and_changes_nothing():
    org, admin = _org_with_admin()
    before = snapshot_balances()

    with pytest.raises(LastAdmin) as caught:
        change_member_role(org_id=org.id, user=admin, role="member")

    assert (caught.value.code, caught.value.status_code) == ("last_admin", 409)
    assert _membership(org, admin).role == "admin"
    assert snapshot_balances() == before


@db
def test_a_suspended_admin_does_not_count_as_the_remaining_admin():
    org, admin = _org_with_admin()
    other = UserFactory()
    add_member(org_id=org.id, user=other, role="admin")
    set_member_status(org_id=org.id, user=other, status="suspended")

    with pytest.raises(LastAdmin):
        change_member_role(org_id=org.id, user=admin, role="member")
    # Demoting the suspended admin leaves the active one: allowed.
    change_member_role(org_id=org.id, user=other, role="member")
    assert _membership(org, other).role == "member"


@db
def test_an_org_without_an_active_admin_can_still_be_managed_and_gain_one():
    org = OrganizationFactory()  # created without an admin
    suspended_admin, other = UserFactory(), UserFactory()
    add_member(org_id=org.id, user=suspended_admin, role="admin")
    # given: its only admin is suspended (as an org migrated from the old system might be)
    OrganizationMember.objects.filter(org=org, user=suspended_admin).update(status="suspended")
    add_member(org_id=org.id, user=other)

    set_member_status(org_id=org.id, user=other, status="suspended")
    set_member_status(org_id=org.id, user=other, status="active")
    change_member_role(org_id=org.id, user=suspended_admin, role="member")
    change_member_role(org_id=org.id, user=other, role="admin")

    # then: the org has an active admin again, and keeps it
    with pytest.raises(LastAdmin):
        change_member_role(org_id=org.id, user=other, role="member")
    assert _membership(org, other).role == "admin"


@db
def test_an_unknown_role_is_refused():
    org, admin = _org_with_admin()

    with pytest.raises(ValidationFailed):
        change_member_role(org_id=org.id, user=admin, role="owner")


@db
def test_changing_nothing_writes_no_audit_event():
    org, admin = _org_with_admin()
    count = AuditEvent.objects.count()

    member = update_member(org_id=org.id, user=admin, role="admin", status="active")

    assert (member.role, member.status) == ("admin", "active")
    assert AuditEvent.objects.count() == count


@db
def test_update_member_needs_a_change_and_a_settable_status():
    org, admin = _org_with_admin()

    with pytest.raises(ValidationFailed):
        update_member(org_id=org.id, user=admin)
    with pytest.raises(ValidationFailed):
        update_member(org_id=org.id, user=admin, status="invited")


@db
def test_changing_a_non_member_or_in_an_unknown_org_is_not_found():
    org, _ = _org_with_admin()
    outsider = UserFactory()

    with pytest.raises(MemberNotFound) as caught:
        change_member_role(org_id=org.id, user=outsider, role="admin")
    assert (caught.value.code, caught.value.status_code) == ("member_not_found", 404)
    with pytest.raises(OrganizationNotFound):
        change_member_role(org_id="no-such-org", user=outsider, role="admin")


# set_member_status -------------------------------------------------------------------------


@db
def test_a_suspended_member_cannot_bill_until_reactivated(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=10)

    set_member_status(org_id=org.id, user=user, status="suspended")

    with pytest.raises(NotAMember):
        deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="while-suspended")
    allocation.refresh_from_db()
    assert allocation.is_active and allocation.used_credits == 0  # suspension keeps the allocation

    set_member_status(org_id=org.id, user=user, status="active")

    assert deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id="after").success
    assert _actions(org)[-2:] == ["member.suspended", "member.reactivated"]


@db
def test_suspending_the_last_active_admin_is_refused():
    org, admin = _org_with_admin()

    with pytest.raises(LastAdmin):
        set_member_status(org_id=org.id, user=admin, status="suspended")

    assert _membership(org, admin).status == "active"


@db
def test_an_admin_can_be_suspended_while_another_admin_remains():
    org, admin = _org_with_admin()
    other = UserFactory()
    add_member(org_id=org.id, user=other, role="admin")

    set_member_status(org_id=org.id, user=admin, status="suspended")

    assert _membership(org, admin).status == "suspended"
    with pytest.raises(LastAdmin):
        set_member_status(org_id=org.id, user=other, status="suspended")


# remove_member -----------------------------------------------------------------------------


@db
def test_removing_a_member_returns_their_unused_credits_to_the_pool(make_funded_member):
    org, user, allocation = make_funded_member(pool=1000, allocation=100)
    deduct_credits(user=user, org_id=org.id, amount=mc("30.5"), request_id="before-removal")
    admin = UserFactory()
    add_member(org_id=org.id, user=admin, role="admin")

    removal = remove_member(org_id=org.id, user=user, actor=admin)

    assert removal.returned_to_pool == mc("69.5")
    assert not OrganizationMember.objects.filter(org=org, user=user).exists()
    allocation.refresh_from_db()
    assert not allocation.is_active and allocation.revoked_at is not None
    assert allocation.allocated_credits == allocation.used_credits == mc("30.5")
    pool = OrganizationCreditPool.objects.get(org=org)
    assert pool.allocated_credits == mc("30.5")
    assert pool.available_credits == mc("969.5")
    assert CreditUsageAttribution.objects.filter(user=user, org=org).count() == 1  # the ledger stays
    assert _actions(org)[-2:] == ["allocation.revoked", "member.removed"]
    event = AuditEvent.objects.get(org_id=org.id, action="member.removed")
    assert event.actor == admin
    assert event.metadata["returned_to_pool"] == mc("69.5")
    assert find_all_drifts(org.id) == []


@db
def test_removing_a_member_without_an_allocation_returns_nothing():
    org, _ = _org_with_admin()
    user = UserFactory()
    add_member(org_id=org.id, user=user)

    removal = remove_member(org_id=org.id, user=user)

    assert removal.returned_to_pool == 0
    assert removal.allocation is None
    assert not OrganizationMember.objects.filter(org=org, user=user).exists()


@db
def test_a_suspended_member_can_be_removed_and_their_credits_return(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=40)
    set_member_status(org_id=org.id, user=user, status="suspended")

    removal = remove_member(org_id=org.id, user=user)

    assert removal.returned_to_pool == mc(40)
    assert OrganizationCreditPool.objects.get(org=org).available_credits == mc(100)


@db
def test_removing_a_member_with_credits_on_hold_changes_nothing(make_funded_member):
    org, user, _ = make_funded_member(pool=100, allocation=40)
    reserve_credits(user=user, org_id=org.id, amount=mc(5), request_id="in-flight")
    before = snapshot_balances()

    with pytest.raises(AllocationHasHolds) as caught:
        remove_member(org_id=org.id, user=user)

    assert caught.value.code == "allocation_has_active_holds"
    assert snapshot_balances() == before
    assert OrganizationMember.objects.filter(org=org, user=user).exists()


@db
def test_removing_the_last_active_admin_is_refused(make_funded_member):
    admin = UserFactory()
    org = OrganizationFactory(created_by=admin)
    add_credits_to_pool(org_id=org.id, amount=mc(100))
    allocate_credits_to_user(org_id=org.id, user=admin, amount=mc(10))
    before = snapshot_balances()

    with pytest.raises(LastAdmin):
        remove_member(org_id=org.id, user=admin)

    assert snapshot_balances() == before
    assert _membership(org, admin).role == "admin"


@db
def test_an_admin_can_remove_themselves_while_another_admin_remains():
    org, admin = _org_with_admin()
    other = UserFactory()
    add_member(org_id=org.id, user=other, role="admin")

    remove_member(org_id=org.id, user=admin, actor=admin)

    assert list(OrganizationMember.objects.filter(org=org).values_list("user__username", flat=True)) == [
        other.username
    ]


@db
def test_removing_a_non_member_is_member_not_found():
    org, _ = _org_with_admin()
    before = snapshot_balances()

    with pytest.raises(MemberNotFound):
        remove_member(org_id=org.id, user=UserFactory())

    assert snapshot_balances() == before


@db
def test_a_removed_member_can_be_added_again_and_allocated_afresh(make_funded_member):
    org, user, old = make_funded_member(pool=100, allocation=40)
    remove_member(org_id=org.id, user=user)

    add_member(org_id=org.id, user=user)
    change = allocate_credits_to_user(org_id=org.id, user=user, amount=mc(10))

    assert change.created and change.allocation.pk != old.pk
    assert UserCreditAllocation.objects.filter(org=org, user=user, is_active=True).count() == 1


# set_default_organization ------------------------------------------------------------------


@db
def test_the_default_org_must_be_an_active_membership_of_an_active_org():
    user = UserFactory()
    mine, suspended, inactive = OrganizationFactory(), OrganizationFactory(), OrganizationFactory()
    for org in (mine, suspended, inactive):
        add_member(org_id=org.id, user=user)
    OrganizationMember.objects.filter(org=suspended, user=user).update(status="suspended")
    Organization.objects.filter(pk=inactive.pk).update(is_active=False)

    set_default_organization(user=user, org_id=mine.id)

    with pytest.raises(OrganizationNotFound):
        set_default_organization(user=user, org_id=suspended.id)
    with pytest.raises(OrganizationNotFound):
        set_default_organization(user=user, org_id="no-such-org")
    with pytest.raises(OrganizationInactive):
        set_default_organization(user=user, org_id=inactive.id)
    assert list(
        OrganizationMember.objects.filter(user=user, is_default=True).values_list("org_id", flat=True)
    ) == [mine.id]


# concurrency -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_demotions_of_the_last_two_admins_leave_one_admin():
    for _round in range(5):
        first = UserFactory()
        org = OrganizationFactory(created_by=first)
        second = UserFactory()
        add_member(org_id=org.id, user=second, role="admin")
        admins = [first, second]

        results = run_concurrently(
            lambda i, org=org, admins=admins: change_member_role(
                org_id=org.id, user=admins[i], role="member"
            ),
            2,
        )

        refused = [r for r in results if isinstance(r, Exception)]
        assert len(refused) == 1 and isinstance(refused[0], LastAdmin), results
        assert OrganizationMember.objects.filter(org=org, role="admin", status="active").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_suspend_demote_and_remove_of_three_admins_leave_one_admin(make_funded_member):
    for _round in range(3):
        org, member, _ = make_funded_member(pool=100, allocation=30)
        admins = [UserFactory(), UserFactory(), member]
        for admin in admins[:2]:
            add_member(org_id=org.id, user=admin, role="admin")
        change_member_role(org_id=org.id, user=member, role="admin")
        actions = [
            lambda org=org, user=admins[0]: set_member_status(org_id=org.id, user=user, status="suspended"),
            lambda org=org, user=admins[1]: change_member_role(org_id=org.id, user=user, role="member"),
            lambda org=org, user=admins[2]: remove_member(org_id=org.id, user=user),
        ]

        results = run_concurrently(lambda i, actions=actions: actions[i](), 3)

        refused = [r for r in results if isinstance(r, Exception)]
        assert len(refused) == 1 and isinstance(refused[0], LastAdmin), results
        assert OrganizationMember.objects.filter(org=org, role="admin", status="active").count() == 1
        assert find_all_drifts(org.id) == []


@pytest.mark.django_db(transaction=True)
def test_removal_racing_deductions_keeps_the_ledger_exact(make_funded_member):
    org, user, allocation = make_funded_member(pool=100, allocation=50)
    admin = UserFactory()
    add_member(org_id=org.id, user=admin, role="admin")

    def work(i: int):
        if i == 0:
            return remove_member(org_id=org.id, user=user)
        return deduct_credits(user=user, org_id=org.id, amount=mc(1), request_id=f"race-{i}")

    results = run_concurrently(work, 11)

    removal = results[0]
    assert not isinstance(removal, Exception), removal
    charged = [r for r in results[1:] if not isinstance(r, Exception)]
    assert all(isinstance(r, NotAMember) for r in results[1:] if isinstance(r, Exception))
    allocation.refresh_from_db()
    assert allocation.used_credits == len(charged) * mc(1)  # none, when the removal ran first
    assert removal.returned_to_pool == mc(50) - allocation.used_credits
    assert OrganizationCreditPool.objects.get(org=org).available_credits == mc(100) - allocation.used_credits
    assert find_all_drifts(org.id) == []


@pytest.mark.django_db
@pytest.mark.parametrize("org_id", ["credits", "Subscriptions", "billing", "usage"])
def test_org_ids_that_would_shadow_api_routes_are_reserved(org_id):
    from organizations.services import create_organization
    from orgbilling.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        create_organization(org_id=org_id, org_name="x", created_by=None)


# update_organization ---------------------------------------------------------------------------


@db
def test_renaming_an_organization_changes_its_name_and_billing_address_only():
    org, _ = _org_with_admin()
    slug = org.slug

    update_organization(org_id=org.id, org_name="Renamed", billing_email="billing@example.com")

    saved = Organization.objects.get(pk=org.pk)
    assert (saved.org_name, saved.billing_email, saved.slug, saved.is_active) == (
        "Renamed",
        "billing@example.com",
        slug,
        True,
    )
    assert update_organization(org_id=org.id).org_name == "Renamed"  # nothing given: nothing changes


@db
def test_an_organization_cannot_be_renamed_to_a_blank_name_or_found_when_unknown():
    org, _ = _org_with_admin()

    with pytest.raises(ValidationFailed):
        update_organization(org_id=org.id, org_name="  ", billing_email="new@example.com")
    with pytest.raises(OrganizationNotFound):
        update_organization(org_id="no-such-org", org_name="Renamed")

    assert Organization.objects.get(pk=org.pk).billing_email == org.billing_email


# invite_or_add_member (the members API's "add") ---------------------------------------------------


@db
def test_only_a_system_admin_may_add_a_member_directly_and_anyone_else_is_refused_before_any_lookup():
    org, admin = _org_with_admin()
    invitee = UserFactory()

    with pytest.raises(Forbidden):
        invite_or_add_member(org_id=org.id, actor=admin, role="member", user_id="nobody", status="active")
    assert not OrganizationMember.objects.filter(org=org, user=invitee).exists()

    ops = UserFactory(is_staff=True)
    member = invite_or_add_member(
        org_id=org.id, actor=ops, role="admin", email=invitee.email.upper(), status="active"
    )

    assert isinstance(member, OrganizationMember)
    assert (member.user, member.role, member.status) == (invitee, "admin", "active")
    event = AuditEvent.objects.get(org_id=org.id, action="member.added", target_id=invitee.username)
    assert (event.actor, event.actor_label) == (ops, "direct-add")


@db
def test_an_org_admins_add_is_an_invitation_that_grants_nothing_yet():
    org, admin = _org_with_admin()
    invitee = UserFactory()

    invitation = invite_or_add_member(org_id=org.id, actor=admin, role="member", user_id=invitee.username)

    assert isinstance(invitation, Invitation)
    assert (invitation.user_id, invitation.email) == (invitee.username, None)
    assert _membership(org, invitee).status == OrganizationMember.Status.INVITED
