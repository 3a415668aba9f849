"""The Django admin: every page loads, balances are read-only, and the credit actions call the
ledger services through their confirmation forms."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.models import (
    AuditEvent,
    CreditGrant,
    CreditPurchase,
    CreditRequest,
    CreditReservation,
    CreditUsageAttribution,
    Department,
    IndividualCreditBalance,
    OrganizationCreditPool,
    OrganizationSubscription,
    OrgBillingHistory,
    Plan,
    UserCreditAllocation,
)
from billing.services import (
    add_credits_to_pool,
    add_individual_credits,
    allocate_credits_to_user,
    create_department,
    deduct_credits,
    reserve_credits,
    update_department,
)
from billing.services.credit_requests import request_credits
from billing.services.subscriptions import create_subscription
from organizations.models import Organization, OrganizationMember, User
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, pool_of, snapshot_balances

pytestmark = pytest.mark.django_db

ACTION_CHECKBOX = "_selected_action"


@dataclass
class Ledger:
    org: Organization
    member: User
    allocation: UserCreditAllocation


@pytest.fixture
def ledger(make_funded_member: Callable[..., Any]) -> Ledger:
    """One row in every admin-registered table, written through the services."""
    org, member, allocation = make_funded_member(pool=1000, allocation=100)
    deduct_credits(
        user=member, org_id=org.id, amount=mc("1.5"), request_id="req-charged", service_name="gpt-4o-mini"
    )
    reserve_credits(user=member, org_id=org.id, amount=mc(2), request_id="req-held")
    staff = UserFactory(is_staff=True)
    create_subscription(org_id=org.id, plan_code="starter", owner=staff, actor=staff, actor_label="test")
    add_individual_credits(user=UserFactory(), amount=mc(10), actor_label="test")
    create_department(org_id=org.id, name="Engineering", budget=0, managers=[member])
    request_credits(org_id=org.id, requester=member, credits=mc(25), reason="More evals")
    # No purchase service exists yet (checkout lands with Stripe); a pending row is test data.
    CreditPurchase.objects.create(org=org, purchased_by=member, credits=mc(5000), amount=Decimal("50.00"))
    return Ledger(org=org, member=member, allocation=allocation)


def changelist_url(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change_url(obj: Model) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


REGISTERED = [
    User,
    Organization,
    OrganizationMember,
    Plan,
    OrganizationSubscription,
    OrganizationCreditPool,
    Department,
    UserCreditAllocation,
    CreditUsageAttribution,
    OrgBillingHistory,
    CreditPurchase,
    IndividualCreditBalance,
    CreditReservation,
    AuditEvent,
    CreditRequest,
]
READ_ONLY = [
    OrganizationSubscription,
    OrganizationCreditPool,
    Department,
    UserCreditAllocation,
    CreditUsageAttribution,
    OrgBillingHistory,
    CreditPurchase,
    IndividualCreditBalance,
    CreditReservation,
    AuditEvent,
    CreditRequest,
]


# --- pages load -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m.__name__)
def test_changelist_and_change_page_load_with_data(admin_client: Client, ledger: Ledger, model: type[Model]):
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None

    listing = admin_client.get(changelist_url(model))
    detail = admin_client.get(change_url(obj))

    assert listing.status_code == 200
    assert listing.context["cl"].result_count >= 1
    assert detail.status_code == 200


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda m: m.__name__)
def test_read_only_models_cannot_be_added_or_deleted(
    admin_client: Client, ledger: Ledger, model: type[Model]
):
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None
    opts = model._meta

    add = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    delete = admin_client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[obj.pk]), {"post": "yes"}
    )

    assert add.status_code == 403
    assert delete.status_code == 403
    assert model._default_manager.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("model", [User, Organization, OrganizationMember, Plan], ids=lambda m: m.__name__)
def test_editable_models_have_an_add_page(admin_client: Client, model: type[Model]):
    opts = model._meta
    assert admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code == 200


def test_date_hierarchies_drill_down_to_the_ledger_rows(admin_client: Client, ledger: Ledger):
    for model, field in [
        (CreditUsageAttribution, "created_at"),
        (AuditEvent, "created_at"),
        (CreditReservation, "created_at"),
        (OrgBillingHistory, "occurred_at"),
    ]:
        row = model._default_manager.order_by("pk").first()
        moment = getattr(row, field)
        response = admin_client.get(
            changelist_url(model),
            {f"{field}__year": moment.year, f"{field}__month": moment.month, f"{field}__day": moment.day},
        )
        assert response.status_code == 200, model
        assert response.context["cl"].date_hierarchy == field
        assert row in response.context["cl"].result_list


def test_attribution_search_by_request_id(admin_client: Client, ledger: Ledger):
    found = admin_client.get(changelist_url(CreditUsageAttribution), {"q": "req-charged"})
    missing = admin_client.get(changelist_url(CreditUsageAttribution), {"q": "req-unknown"})

    assert [row.request_id for row in found.context["cl"].result_list] == ["req-charged"]
    assert missing.context["cl"].result_count == 0


def test_balances_are_shown_in_credits(admin_client: Client, ledger: Ledger):
    pools = admin_client.get(changelist_url(OrganizationCreditPool)).content.decode()
    orgs = admin_client.get(changelist_url(Organization)).content.decode()
    allocation = admin_client.get(change_url(ledger.allocation)).content.decode()

    # pool: 1000 total, 100 allocated, 1.5 used, 900 available
    for page in (pools, orgs):
        assert "Total (credits)" in page
        assert "1000.000" in page
        assert "900.000" in page
        assert str(mc(1000)) not in page
    # allocation: 100 allocated, 1.5 used, 2 reserved, 96.5 free
    assert "96.500" in allocation
    assert "1.500" in allocation
    assert str(mc(100)) not in allocation


# --- balances are read-only -------------------------------------------------------------------


def test_pool_change_page_has_no_balance_inputs_and_refuses_a_post(admin_client: Client, ledger: Ledger):
    before = snapshot_balances()
    pool = pool_of(ledger.org)

    page = admin_client.get(change_url(pool))
    response = admin_client.post(
        change_url(pool),
        {"total_credits": mc(999_999), "allocated_credits": 0, "used_credits": 0, "_save": "Save"},
    )

    assert page.status_code == 200
    assert 'name="total_credits"' not in page.content.decode()
    assert response.status_code == 403
    assert snapshot_balances() == before


def test_allocation_change_view_refuses_a_post(admin_client: Client, ledger: Ledger):
    before = snapshot_balances()

    response = admin_client.post(
        change_url(ledger.allocation),
        {"allocated_credits": mc(900), "used_credits": 0, "reserved_credits": 0, "is_active": "on"},
    )

    assert response.status_code == 403
    assert snapshot_balances() == before


def inline_form_data(response: Any) -> dict[str, Any]:
    """The POST body a browser would send back for a change page as rendered."""
    data: dict[str, Any] = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        data[form.add_prefix(name)] = "" if value is None else value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        for subform in formset.forms:
            for name, field in subform.fields.items():
                value = subform.initial.get(name, field.initial)
                if isinstance(value, Model):
                    value = value.pk
                data[subform.add_prefix(name)] = "" if value is None else value
    return {key: value for key, value in data.items() if value is not False}


def test_organization_change_saves_its_fields_but_not_inline_balances(admin_client: Client, ledger: Ledger):
    # given the change page as rendered, with a forged balance for the allocation inline row
    page = admin_client.get(change_url(ledger.org))
    data = inline_form_data(page)
    data["org_name"] = "Renamed Inc"
    data["allocations-0-allocated_credits"] = mc(900)
    data["allocations-0-used_credits"] = 0
    data["_save"] = "Save"
    before = snapshot_balances()

    # when
    response = admin_client.post(change_url(ledger.org), data)

    # then the name changed and no balance did
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert Organization.objects.get(pk=ledger.org.pk).org_name == "Renamed Inc"
    assert snapshot_balances() == before


# --- add credits ------------------------------------------------------------------------------


def run_action(client: Client, model: type[Model], action: str, selected: list[Any], **fields: Any) -> Any:
    """First POST (from the changelist) without ``apply``; with fields, the confirming POST."""
    data: dict[str, Any] = {"action": action, ACTION_CHECKBOX: selected, **fields}
    if fields:
        data["apply"] = "yes"
    else:
        data["index"] = "0"
    return client.post(changelist_url(model), data)


def test_add_credits_shows_a_confirmation_form_first(admin_client: Client, ledger: Ledger):
    before = snapshot_balances()

    response = run_action(admin_client, Organization, "add_credits", [ledger.org.pk])

    assert response.status_code == 200
    assert "admin/billing/credit_action.html" in [t.name for t in response.templates]
    assert "credits" in response.context["form"].fields
    assert snapshot_balances() == before


def test_add_credits_action_funds_the_pool_through_the_service(
    admin_client: Client, admin_user: User, ledger: Ledger
):
    response = run_action(
        admin_client,
        Organization,
        "add_credits",
        [ledger.org.pk],
        credits="250.5",
        purchase_amount="2.51",
        description="Manual top-up",
    )

    assert response.status_code == 302
    assert pool_of(ledger.org).total_credits == mc(1000) + mc("250.5")
    event = AuditEvent.objects.filter(org=ledger.org, action="pool.credits_added").latest("pk")
    assert event.actor == admin_user
    assert event.metadata["credits"] == mc("250.5")
    history = OrgBillingHistory.objects.get(pk=event.metadata["history_id"])
    assert history.event_type == OrgBillingHistory.EventType.CREDIT_PURCHASE
    assert history.amount == Decimal("2.51")
    assert history.description == "Manual top-up"
    assert any("Added 250.500 credits" in m for m in messages_of(response))


def test_add_credits_action_also_works_from_the_pool_changelist(admin_client: Client, ledger: Ledger):
    response = run_action(admin_client, OrganizationCreditPool, "add_credits", [ledger.org.pk], credits="5")

    assert response.status_code == 302
    assert pool_of(ledger.org).total_credits == mc(1005)


def test_grant_promotional_credits_action_adds_an_expiring_promotion_through_the_service(
    admin_client: Client, admin_user: User, ledger: Ledger
):
    expires = timezone.now() + timedelta(days=30)

    response = run_action(
        admin_client,
        OrganizationCreditPool,
        "grant_promotional_credits",
        [ledger.org.pk],
        credits="75",
        expires_at=expires.strftime("%Y-%m-%d %H:%M"),
        priority="2",
        description="Launch promo",
    )

    assert response.status_code == 302
    assert pool_of(ledger.org).total_credits == mc(1075)
    grant = CreditGrant.objects.filter(org=ledger.org).latest("pk")
    assert (grant.source, grant.credits, grant.priority, grant.granted_by) == (
        "promotion",
        mc(75),
        2,
        admin_user,
    )
    assert grant.expires_at is not None and grant.expires_at.date() == expires.date()
    assert any("Granted 75.000 promotional credits" in m for m in messages_of(response))


def test_grant_promotional_credits_refuses_a_past_expiry_and_changes_nothing(
    admin_client: Client, ledger: Ledger
):
    before = snapshot_balances()

    response = run_action(
        admin_client,
        Organization,
        "grant_promotional_credits",
        [ledger.org.pk],
        credits="5",
        expires_at="2001-01-01 00:00",
        priority="10",
    )

    assert response.status_code == 200
    assert response.context["form"].errors["expires_at"]
    assert snapshot_balances() == before


def test_credit_grants_are_read_only_in_the_admin(admin_client: Client, ledger: Ledger):
    grant = CreditGrant.objects.filter(org=ledger.org).first()
    assert grant is not None

    assert admin_client.get(reverse("admin:billing_creditgrant_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:billing_creditgrant_change", args=[grant.pk])).status_code == 200
    assert admin_client.get(reverse("admin:billing_creditgrant_add")).status_code == 403


@pytest.mark.parametrize("amount", ["-5", "1.0001", "abc", "0", "", "NaN", "Infinity"])
def test_add_credits_rejects_invalid_amounts_and_changes_nothing(
    admin_client: Client, ledger: Ledger, amount: str
):
    before = snapshot_balances()

    response = run_action(admin_client, Organization, "add_credits", [ledger.org.pk], credits=amount)

    assert response.status_code == 200
    assert response.context["form"].errors["credits"]
    assert snapshot_balances() == before


def test_add_credits_rejects_a_bad_purchase_amount(admin_client: Client, ledger: Ledger):
    before = snapshot_balances()

    response = run_action(
        admin_client, Organization, "add_credits", [ledger.org.pk], credits="10", purchase_amount="1.001"
    )

    assert response.status_code == 200
    assert response.context["form"].errors["purchase_amount"]
    assert snapshot_balances() == before


def test_add_credits_to_an_inactive_org_shows_the_service_error(admin_client: Client, ledger: Ledger):
    Organization.objects.filter(pk=ledger.org.pk).update(is_active=False)
    before = snapshot_balances()

    response = run_action(admin_client, Organization, "add_credits", [ledger.org.pk], credits="10")

    assert response.status_code == 200
    assert any("organization_inactive" in m for m in messages_of(response))
    assert snapshot_balances() == before


def test_credit_actions_need_exactly_one_organization(admin_client: Client, ledger: Ledger):
    other = OrganizationFactory()
    before = snapshot_balances()

    response = run_action(admin_client, Organization, "add_credits", [ledger.org.pk, other.pk], credits="10")

    assert response.status_code == 302
    assert any("exactly one organization" in m for m in messages_of(response))
    assert snapshot_balances() == before


def action_names(response: Any) -> set[str]:
    form = response.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices}


def test_superuser_sees_the_credit_actions(admin_client: Client):
    assert {"add_credits", "allocate_credits"} <= action_names(admin_client.get(changelist_url(Organization)))
    assert "add_credits" in action_names(admin_client.get(changelist_url(OrganizationCreditPool)))
    assert "revoke_allocations" in action_names(admin_client.get(changelist_url(UserCreditAllocation)))


def test_staff_without_credit_permissions_cannot_run_credit_actions(ledger: Ledger):
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    client = Client()
    client.force_login(staff)
    before = snapshot_balances()

    listing = client.get(changelist_url(Organization))
    response = run_action(client, Organization, "add_credits", [ledger.org.pk], credits="10")

    assert listing.status_code == 200
    assert "add_credits" not in action_names(listing)
    # with no action it may run, the POST just shows the changelist again
    assert "admin/billing/credit_action.html" not in [t.name for t in response.templates]
    assert snapshot_balances() == before


# --- allocate ---------------------------------------------------------------------------------


def test_allocate_form_offers_only_active_members(admin_client: Client, ledger: Ledger):
    suspended = UserFactory()
    add_member(org_id=ledger.org.id, user=suspended, actor_label="test")
    OrganizationMember.objects.filter(user=suspended).update(status=OrganizationMember.Status.SUSPENDED)
    outsider = UserFactory()

    response = run_action(admin_client, Organization, "allocate_credits", [ledger.org.pk])

    members = set(response.context["form"].fields["user"].queryset)
    assert ledger.member in members
    assert suspended not in members
    assert outsider not in members


def test_allocate_action_allocates_through_the_service(
    admin_client: Client, admin_user: User, ledger: Ledger
):
    newcomer = UserFactory()
    add_member(org_id=ledger.org.id, user=newcomer, actor_label="test")

    response = run_action(
        admin_client,
        Organization,
        "allocate_credits",
        [ledger.org.pk],
        user=newcomer.pk,
        credits="50.25",
        expires_at="2999-01-01 00:00",
    )

    assert response.status_code == 302
    allocation = UserCreditAllocation.objects.get(org=ledger.org, user=newcomer, is_active=True)
    assert allocation.allocated_credits == mc("50.25")
    assert allocation.allocated_by == admin_user
    assert allocation.expires_at is not None and allocation.expires_at.year == 2999
    assert pool_of(ledger.org).allocated_credits == mc(100) + mc("50.25")
    assert AuditEvent.objects.filter(action="allocation.created", actor=admin_user, org=ledger.org).exists()


def test_allocate_action_raises_an_existing_allocation(admin_client: Client, ledger: Ledger):
    run_action(
        admin_client, Organization, "allocate_credits", [ledger.org.pk], user=ledger.member.pk, credits="10"
    )

    ledger.allocation.refresh_from_db()
    assert ledger.allocation.allocated_credits == mc(110)


def test_over_allocation_shows_allocation_exceeds_pool_and_changes_nothing(
    admin_client: Client, ledger: Ledger
):
    before = snapshot_balances()

    response = run_action(
        admin_client,
        Organization,
        "allocate_credits",
        [ledger.org.pk],
        user=ledger.member.pk,
        credits="900.001",
    )

    assert response.status_code == 200
    assert any("allocation_exceeds_pool" in m for m in messages_of(response))
    assert snapshot_balances() == before


def test_allocate_refuses_a_non_member_and_a_past_expiry(admin_client: Client, ledger: Ledger):
    outsider = UserFactory()
    before = snapshot_balances()

    outsider_response = run_action(
        admin_client, Organization, "allocate_credits", [ledger.org.pk], user=outsider.pk, credits="1"
    )
    past_response = run_action(
        admin_client,
        Organization,
        "allocate_credits",
        [ledger.org.pk],
        user=ledger.member.pk,
        credits="1",
        expires_at="2000-01-01 00:00",
    )

    assert outsider_response.context["form"].errors["user"]
    assert past_response.context["form"].errors["expires_at"]
    assert snapshot_balances() == before


# --- revoke -----------------------------------------------------------------------------------


def test_revoke_confirmation_lists_what_returns_to_the_pool(
    make_funded_member: Callable[..., Any], admin_client
):
    org, member, allocation = make_funded_member(pool=1000, allocation=100)
    deduct_credits(user=member, org_id=org.id, amount=mc("1.5"), request_id="r-1")
    before = snapshot_balances()

    response = run_action(admin_client, UserCreditAllocation, "revoke_allocations", [allocation.pk])

    assert response.status_code == 200
    assert "admin/billing/revoke_allocations.html" in [t.name for t in response.templates]
    assert "98.500" in response.content.decode()
    assert snapshot_balances() == before


def test_revoke_action_returns_unused_credits_to_the_pool(
    make_funded_member: Callable[..., Any], admin_client: Client, admin_user: User
):
    org, member, allocation = make_funded_member(pool=1000, allocation=100)
    deduct_credits(user=member, org_id=org.id, amount=mc("1.5"), request_id="r-1")

    response = run_action(
        admin_client, UserCreditAllocation, "revoke_allocations", [allocation.pk], apply="yes"
    )

    assert response.status_code == 302
    allocation.refresh_from_db()
    assert not allocation.is_active
    assert allocation.allocated_credits == mc("1.5")
    pool = pool_of(org)
    assert pool.allocated_credits == mc("1.5")
    assert pool.available_credits == mc("998.5")
    event = AuditEvent.objects.get(action="allocation.revoked", target_id=str(allocation.pk))
    assert event.actor == admin_user
    assert event.metadata["returned_to_pool"] == mc("98.5")
    assert any("98.500 credits returned" in m for m in messages_of(response))


def test_revoke_refuses_an_allocation_with_holds(admin_client: Client, ledger: Ledger):
    # the ledger fixture holds 2 credits on the member's allocation
    before = snapshot_balances()

    confirmation = run_action(
        admin_client, UserCreditAllocation, "revoke_allocations", [ledger.allocation.pk]
    )
    response = run_action(
        admin_client, UserCreditAllocation, "revoke_allocations", [ledger.allocation.pk], apply="yes"
    )

    assert response.status_code == 302
    assert "refused while credits are held" in confirmation.content.decode()
    assert any("allocation_has_active_holds" in m for m in messages_of(response))
    assert snapshot_balances() == before


def test_revoke_skips_an_already_revoked_allocation(make_funded_member: Callable[..., Any], admin_client):
    org, member, allocation = make_funded_member(pool=1000, allocation=100)
    run_action(admin_client, UserCreditAllocation, "revoke_allocations", [allocation.pk], apply="yes")
    # the member gets a new allocation; revoking the old row again must not touch it
    allocate_credits_to_user(org_id=org.id, user=member, amount=mc(5), actor_label="test")
    before = snapshot_balances()

    response = run_action(
        admin_client, UserCreditAllocation, "revoke_allocations", [allocation.pk], apply="yes"
    )

    assert any("not active" in m for m in messages_of(response))
    assert snapshot_balances() == before


# --- organizations and members ----------------------------------------------------------------


def test_adding_an_organization_runs_create_organization(admin_client: Client, admin_user: User):
    founder = UserFactory()

    response = admin_client.post(
        reverse("admin:organizations_organization_add"),
        {
            "id": "acme-labs",
            "org_name": "Acme Labs",
            "slug": "",
            "billing_email": "",
            "created_by": founder.pk,
        },
    )

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    org = Organization.objects.get(pk="acme-labs")
    assert org.slug == "acme-labs"
    assert pool_of(org).total_credits == 0
    assert OrganizationMember.objects.get(org=org, user=founder).role == OrganizationMember.Role.ADMIN
    event = AuditEvent.objects.get(action="organization.created", org=org)
    assert event.actor_label == f"admin:{admin_user.username}"


def test_adding_an_organization_with_a_taken_slug_is_a_form_error(admin_client: Client):
    OrganizationFactory(id="taken")

    response = admin_client.post(
        reverse("admin:organizations_organization_add"), {"id": "Taken", "org_name": "Clash", "slug": ""}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["slug"]
    assert not Organization.objects.filter(pk="Taken").exists()


def test_adding_a_member_runs_add_member(admin_client: Client, admin_user: User):
    org = OrganizationFactory()
    user = UserFactory()

    response = admin_client.post(
        reverse("admin:organizations_organizationmember_add"),
        {"org": org.pk, "user": user.pk, "role": "member"},
    )

    assert response.status_code == 302
    assert OrganizationMember.objects.get(org=org, user=user).status == OrganizationMember.Status.ACTIVE
    assert AuditEvent.objects.filter(action="member.added", org=org, actor=admin_user).exists()


def test_a_second_default_organization_is_a_form_error(admin_client: Client):
    user = UserFactory()
    first, second = OrganizationFactory(), OrganizationFactory()
    add_member(org_id=first.id, user=user, is_default=True, actor_label="test")

    response = admin_client.post(
        reverse("admin:organizations_organizationmember_add"),
        {"org": second.pk, "user": user.pk, "role": "member", "is_default": "on"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["is_default"]
    assert not OrganizationMember.objects.filter(org=second, user=user).exists()


def test_the_default_flag_is_the_users_choice_not_the_admins(admin_client: Client):
    user = UserFactory()
    first, second = OrganizationFactory(), OrganizationFactory()
    add_member(org_id=first.id, user=user, is_default=True, actor_label="test")
    membership = add_member(org_id=second.id, user=user, actor_label="test")

    response = admin_client.post(
        change_url(membership), {"role": "member", "status": "active", "is_default": "on"}
    )

    assert response.status_code == 302
    membership.refresh_from_db()
    assert not membership.is_default


def test_member_role_and_status_can_be_edited(admin_client: Client, ledger: Ledger):
    membership = OrganizationMember.objects.get(org=ledger.org, user=ledger.member)

    response = admin_client.post(change_url(membership), {"role": "admin", "status": "suspended"})

    assert response.status_code == 302
    membership.refresh_from_db()
    assert (membership.role, membership.status) == ("admin", "suspended")


def test_members_cannot_be_deleted(admin_client: Client, ledger: Ledger):
    membership = OrganizationMember.objects.get(org=ledger.org, user=ledger.member)

    response = admin_client.post(
        reverse("admin:organizations_organizationmember_delete", args=[membership.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert OrganizationMember.objects.filter(pk=membership.pk).exists()


def test_admin_pages_queries_do_not_grow_with_members(admin_client: Client):
    def org_with_members(count: int) -> Organization:
        org = OrganizationFactory()
        add_credits_to_pool(org_id=org.id, amount=mc(10_000), actor_label="test")
        for _ in range(count):
            user = UserFactory()
            add_member(org_id=org.id, user=user, actor_label="test")
            allocate_credits_to_user(org_id=org.id, user=user, amount=mc(10), actor_label="test")
        return org

    def queries_for(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        return len(queries)

    listings = [Organization, OrganizationMember, UserCreditAllocation, OrganizationCreditPool]
    small = org_with_members(2)
    small_counts = [queries_for(change_url(small))] + [queries_for(changelist_url(m)) for m in listings]

    large = org_with_members(25)
    large_counts = [queries_for(change_url(large))] + [queries_for(changelist_url(m)) for m in listings]

    assert large_counts == small_counts


# --- departments ------------------------------------------------------------------------------


def test_department_figures_are_shown_in_credits(admin_client: Client, ledger: Ledger):
    department = Department.objects.get(org=ledger.org)
    update_department(org_id=ledger.org.id, department_id=department.pk, budget=mc(300))
    allocate_credits_to_user(
        org_id=ledger.org.id, user=_new_member(ledger), amount=mc("12.5"), department_id=department.pk
    )

    page = admin_client.get(changelist_url(Department)).content.decode()

    assert "300.000" in page and "12.500" in page and "287.500" in page


def _new_member(ledger: Ledger) -> User:
    user = UserFactory()
    add_member(org_id=ledger.org.id, user=user)
    return user


def test_set_department_budget_action_resizes_through_the_service(
    admin_client: Client, admin_user: User, ledger: Ledger
):
    department = Department.objects.get(org=ledger.org)

    response = run_action(admin_client, Department, "set_department_budget", [department.pk], budget="450")

    assert response.status_code == 302
    department.refresh_from_db()
    assert department.budget_credits == mc(450)
    assert pool_of(ledger.org).allocated_credits == mc(100) + mc(450)
    event = AuditEvent.objects.get(action="department.updated", target_id=str(department.pk))
    assert event.actor == admin_user


def test_set_department_budget_beyond_the_pool_shows_the_refusal(admin_client: Client, ledger: Ledger):
    department = Department.objects.get(org=ledger.org)
    before = snapshot_balances()

    response = run_action(admin_client, Department, "set_department_budget", [department.pk], budget="901")

    assert any("allocation_exceeds_pool" in m for m in messages_of(response))
    assert snapshot_balances() == before


def test_delete_department_action_returns_the_budget(admin_client: Client, ledger: Ledger):
    department = Department.objects.get(org=ledger.org)
    update_department(org_id=ledger.org.id, department_id=department.pk, budget=mc(300))

    response = run_action(admin_client, Department, "delete_departments", [department.pk])

    assert response.status_code == 302
    department.refresh_from_db()
    assert department.deleted_at is not None
    assert pool_of(ledger.org).allocated_credits == mc(100)
    assert any("300.000 credits returned" in m for m in messages_of(response))


# --- credit requests --------------------------------------------------------------------------


def test_approve_action_raises_the_allocation_through_the_service(
    admin_client: Client, admin_user: User, ledger: Ledger
):
    credit_request = CreditRequest.objects.get(org=ledger.org)
    allocated = UserCreditAllocation.objects.get(pk=ledger.allocation.pk).allocated_credits

    response = run_action(admin_client, CreditRequest, "approve_credit_requests", [credit_request.pk])

    assert response.status_code == 302
    credit_request.refresh_from_db()
    assert (credit_request.status, credit_request.decided_by) == ("approved", admin_user)
    assert UserCreditAllocation.objects.get(pk=ledger.allocation.pk).allocated_credits == allocated + mc(25)
    assert AuditEvent.objects.filter(action="credit_request.approved", actor=admin_user).exists()


def test_staff_cannot_approve_their_own_request_in_the_admin(
    admin_client: Client, admin_user: User, ledger: Ledger
):
    add_member(org_id=ledger.org.id, user=admin_user)
    own = request_credits(org_id=ledger.org.id, requester=admin_user, credits=mc(5), reason="mine")
    before = snapshot_balances()

    response = run_action(admin_client, CreditRequest, "approve_credit_requests", [own.pk])

    assert any("own_credit_request" in m for m in messages_of(response))
    own.refresh_from_db()
    assert own.status == "pending"
    assert snapshot_balances() == before


def test_decline_action_declines_and_moves_nothing(admin_client: Client, ledger: Ledger):
    credit_request = CreditRequest.objects.get(org=ledger.org)
    balances = {k: v for k, v in snapshot_balances().items() if k != "audit"}

    run_action(admin_client, CreditRequest, "decline_credit_requests", [credit_request.pk])
    run_action(admin_client, CreditRequest, "approve_credit_requests", [credit_request.pk])

    credit_request.refresh_from_db()
    assert credit_request.status == "declined"
    assert {k: v for k, v in snapshot_balances().items() if k != "audit"} == balances
