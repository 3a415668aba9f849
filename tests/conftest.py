"""Shared fixtures. The database is the real PostgreSQL that `make test` starts."""

import importlib
from collections.abc import Callable

import pytest

from billing.models import OrganizationCreditPool, Plan, UserCreditAllocation
from billing.money import credits_to_millicredits
from billing.services import add_credits_to_pool, allocate_credits_to_user
from organizations.models import Organization, User
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory


def mc(credits: str | int) -> int:
    """Credits → millicredits, through the one conversion helper."""
    return credits_to_millicredits(str(credits))


@pytest.fixture
def make_funded_member() -> Callable[..., tuple[Organization, User, UserCreditAllocation]]:
    """Build an org with ``pool`` credits and one member holding an ``allocation`` of them."""

    def build(
        pool: str | int = 1000, allocation: str | int = 100, org: Organization | None = None
    ) -> tuple[Organization, User, UserCreditAllocation]:
        org = org or OrganizationFactory()
        if pool:
            add_credits_to_pool(org_id=org.id, amount=mc(pool), actor_label="test")
        user = UserFactory()
        add_member(org_id=org.id, user=user, actor_label="test")
        change = allocate_credits_to_user(org_id=org.id, user=user, amount=mc(allocation), actor_label="test")
        return org, user, change.allocation

    return build


@pytest.fixture
def plans(transactional_db) -> None:
    """The default plans (a transactional test's flush removes the migration's rows)."""
    default_plans = importlib.import_module("billing.migrations.0003_default_plans").PLANS
    for code, name, price, tier, calls in default_plans:
        Plan.objects.get_or_create(
            plan_code=code,
            defaults={
                "name": name,
                "monthly_price": price,
                "rate_limit_tier": tier,
                "monthly_api_calls": calls,
            },
        )


def snapshot_balances() -> dict[str, object]:
    """Every balance and ledger count, to prove a refusal changed nothing."""
    from billing.models import (
        AuditEvent,
        CreditReservation,
        CreditUsageAttribution,
        IndividualCreditBalance,
        OrgBillingHistory,
    )

    return {
        "pools": sorted(
            OrganizationCreditPool.objects.values_list(
                "org_id", "total_credits", "allocated_credits", "used_credits"
            )
        ),
        "allocations": sorted(
            UserCreditAllocation.objects.values_list(
                "id", "allocated_credits", "used_credits", "reserved_credits", "is_active"
            )
        ),
        "individual": sorted(
            IndividualCreditBalance.objects.values_list(
                "user_id", "total_credits", "used_credits", "reserved_credits"
            )
        ),
        "attribution": CreditUsageAttribution.objects.count(),
        "reservations": sorted(CreditReservation.objects.values_list("id", "status")),
        "history": OrgBillingHistory.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters live in the cache: every test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client():
    """A DRF test client; ``api_client.force_login(user)`` signs in through the session."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def staff_user(db) -> User:
    return UserFactory(username="ops-admin", is_staff=True)


def assert_error(response, status: int, code: str) -> dict:
    """The response is an error in the one shape, with this status and code."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return body["error"]
