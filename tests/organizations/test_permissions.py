"""organizations.permissions: ``acts_as_system_admin`` is the one "system admin" rule, and an
org-scoped API key narrows it (staff inside its own org, never system-wide)."""

import re
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from billing.errors import OrganizationNotFound
from organizations.permissions import acts_as_system_admin, org_access
from organizations.services import create_api_key
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def _scoped_to(user, org_id):
    user.api_key_scope_org_id = org_id  # what ApiKeyAuthentication sets
    return user


def test_a_staff_account_without_an_org_scoped_key_acts_as_system_admin_everywhere():
    ops = UserFactory(is_staff=True)

    assert acts_as_system_admin(ops)
    assert acts_as_system_admin(ops, org_id="acme")
    assert acts_as_system_admin(_scoped_to(ops, None), org_id="other")


def test_an_org_scoped_key_of_a_staff_account_acts_as_system_admin_in_its_org_only():
    ops = _scoped_to(UserFactory(is_staff=True), "acme")

    assert acts_as_system_admin(ops, org_id="acme")
    assert not acts_as_system_admin(ops, org_id="other")
    assert not acts_as_system_admin(ops)  # system-wide: never through an org-scoped key


def test_a_non_staff_account_never_acts_as_system_admin():
    ada = UserFactory()

    assert not acts_as_system_admin(ada)
    assert not acts_as_system_admin(ada, org_id="acme")
    assert not acts_as_system_admin(_scoped_to(ada, "acme"), org_id="acme")


def test_org_access_gives_a_scoped_staff_key_the_system_admin_role_in_its_org_and_404_elsewhere():
    OrganizationFactory(id="acme")
    OrganizationFactory(id="other")
    ops = _scoped_to(UserFactory(is_staff=True), "acme")

    assert org_access(user=ops, org_id="acme").role == "system_admin"
    with pytest.raises(OrganizationNotFound):
        org_access(user=ops, org_id="other")


def test_a_scoped_staff_key_grants_credits_in_its_org_but_cannot_read_the_system_overview():
    OrganizationFactory(id="acme")
    ops = UserFactory(is_staff=True)
    _, raw = create_api_key(user=ops, name="ops acme", org_id="acme")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    granted = client.post("/api/v1/org-billing/credits/acme/add", {"credits": 10}, format="json")

    assert granted.status_code == 200, granted.content
    assert granted.json()["credits_added"] == 10.0
    assert_error(client.get("/api/v1/org-billing/billing/system"), 403, "forbidden")


# Reads of ``is_staff`` that are not the decision: the identity sync writes it from the
# provider's role; ``create_superuser`` sets it.
_WRITERS = {"organizations/permissions.py", "organizations/services/identity.py"}


def test_no_module_but_the_permissions_module_reads_is_staff_to_decide_who_is_a_system_admin():
    readers = []
    for package in ("billing", "organizations", "orgbilling"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or relative in _WRITERS:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\.is_staff\b", line):
                    readers.append(f"{relative}:{number}: {line.strip()}")
    assert readers == []
