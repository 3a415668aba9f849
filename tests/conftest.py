"""Shared fixtures. The database is the real PostgreSQL that `make test` starts.

Plain helpers (``mc``, ``assert_error``, ``snapshot_balances``, ``pool_of``) live in
``tests/helpers.py``; import them from there."""

import importlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from billing.models import Plan, UserCreditAllocation
from billing.services import add_credits_to_pool, allocate_credits_to_user
from organizations.models import Organization, User
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc
from tests.parallel import LOCK_DIR_ENV, place, suite_lock

_suite_lock = None
_lock_dir_key = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist the controller makes the directory its workers share the suite lock in
    (tests/parallel.py); the workers, started after this, inherit its path."""
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ[LOCK_DIR_ENV] = tempfile.mkdtemp(prefix="orgbilling-test-lock-")
        config.stash[_lock_dir_key] = Path(os.environ[LOCK_DIR_ENV])


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_lock_dir_key, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    place(items, config.rootpath)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Each test holds the suite's locks (tests/parallel.py) from setup to teardown."""
    global _suite_lock
    if _suite_lock is None:
        _suite_lock = suite_lock()
    if _suite_lock is None:
        return (yield)
    with _suite_lock.held(
        processes=item.get_closest_marker("processes") is not None,
        exclusive=item.get_closest_marker("exclusive") is not None,
    ):
        return (yield)


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
