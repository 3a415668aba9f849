"""organizations is the lower layer: it writes audit events and asks for credit effects through
registries the billing app fills (``orgbilling.audit``, ``organizations.credits``). What the
registries must keep: the write and its audit are one transaction, and with nothing
registered a write refuses instead of going unaudited or leaving an org without its pool."""

import pytest
from django.core.exceptions import ImproperlyConfigured

import organizations.credits
import orgbilling.audit
from billing.audit import record_audit_event
from billing.models import AuditEvent, OrganizationCreditPool
from billing.services.members import LEDGER_MEMBER_CREDITS
from organizations.credits import member_credits, register_member_credits
from organizations.models import Organization, OrganizationMember
from organizations.services import add_member, create_organization
from orgbilling.audit import register_audit_recorder
from tests.factories import OrganizationFactory, UserFactory

db = pytest.mark.django_db


@pytest.fixture
def restore_registries(monkeypatch):
    """Each test may register its own; the billing app's are back afterwards."""
    monkeypatch.setattr(orgbilling.audit, "_recorder", orgbilling.audit._recorder)
    monkeypatch.setattr(organizations.credits, "_registered", organizations.credits._registered)


def test_the_billing_app_registers_the_ledger_and_the_audit_log():
    assert member_credits() is LEDGER_MEMBER_CREDITS
    assert orgbilling.audit._recorder is record_audit_event


@db
def test_creating_an_org_creates_its_pool_and_audit_in_one_transaction():
    creator = UserFactory()
    org = create_organization(org_id="acme", org_name="Acme", created_by=creator)
    assert OrganizationCreditPool.objects.filter(org=org).exists()
    assert AuditEvent.objects.filter(org_id="acme", action="organization.created").exists()


@db
def test_a_failing_audit_write_rolls_the_membership_change_back(restore_registries):
    org = OrganizationFactory()
    user = UserFactory()

    def refuse(**event):
        raise RuntimeError("audit log unavailable")

    register_audit_recorder(refuse)
    with pytest.raises(RuntimeError, match="audit log unavailable"):
        add_member(org_id=org.id, user=user)
    assert not OrganizationMember.objects.filter(org=org, user=user).exists()


@db
def test_without_an_audit_recorder_audited_writes_refuse(restore_registries):
    org = OrganizationFactory()
    user = UserFactory()
    orgbilling.audit._recorder = None
    with pytest.raises(ImproperlyConfigured):
        add_member(org_id=org.id, user=user)
    assert not OrganizationMember.objects.filter(org=org, user=user).exists()


@db
def test_without_member_credits_no_org_is_created_without_its_pool(restore_registries):
    organizations.credits._registered = None
    with pytest.raises(ImproperlyConfigured):
        create_organization(org_id="acme", org_name="Acme", created_by=UserFactory())
    assert not Organization.objects.filter(pk="acme").exists()
    assert not AuditEvent.objects.filter(org_id="acme").exists()
    register_member_credits(LEDGER_MEMBER_CREDITS)
    assert create_organization(org_id="acme", org_name="Acme", created_by=UserFactory()).pk == "acme"
