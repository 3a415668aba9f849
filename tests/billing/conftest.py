"""Fixtures of the billing tests."""

from types import SimpleNamespace

import pytest

from organizations.services import add_member
from tests.factories import UserFactory


@pytest.fixture
def team(make_funded_member) -> SimpleNamespace:
    """An org with 1,000 credits: a member holding 100, an admin holding none, an outsider.

    A module that needs more people or history overrides ``team`` with a fixture of the same name
    that asks for this one and adds to it (pytest hands the outer fixture to the inner)."""
    org, member, allocation = make_funded_member(pool=1000, allocation=100)
    admin = UserFactory()
    add_member(org_id=org.id, user=admin, role="admin")
    return SimpleNamespace(org=org, member=member, allocation=allocation, admin=admin, outsider=UserFactory())
