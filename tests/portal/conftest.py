"""The portal's tests: the org "acme" with an admin and a funded member, and the payments
tests' local Stripe stand-in for buying credits."""

import pytest

from billing.services import add_credits_to_pool, allocate_credits_to_user
from organizations.services import add_member
from tests.billing.payments.conftest import _stripe_server, fake_stripe
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc

__all__ = ["_stripe_server", "acme", "fake_stripe"]


@pytest.fixture
def acme():
    """Org "acme" (1,000 credits) with its admin "boss" and the member "mia" holding 100."""
    admin = UserFactory(username="boss")
    org = OrganizationFactory(id="acme", org_name="Acme", created_by=admin)
    add_credits_to_pool(org_id=org.id, amount=mc(1000), actor_label="test")
    member = UserFactory(username="mia")
    add_member(org_id=org.id, user=member, actor_label="test")
    allocate_credits_to_user(org_id=org.id, user=member, amount=mc(100), actor_label="test")
    return org, admin, member
