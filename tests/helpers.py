"""Plain helpers the tests share (no fixtures: those live in the ``conftest.py`` of each folder)."""

import importlib
import pkgutil
from pathlib import Path

import billing
import organizations
import orgbilling
from billing.models import (
    AuditEvent,
    CreditReservation,
    CreditUsageAttribution,
    Department,
    IndividualCreditBalance,
    OrganizationCreditPool,
    OrgBillingHistory,
    UserCreditAllocation,
)
from billing.money import credits_to_millicredits
from organizations.models import Organization


def mc(credits: str | int) -> int:
    """Credits → millicredits, through the one conversion helper."""
    return credits_to_millicredits(str(credits))


def pool_of(org: Organization) -> OrganizationCreditPool:
    """The org's credit pool, read fresh from the database."""
    return OrganizationCreditPool.objects.get(org=org)


def snapshot_balances() -> dict[str, object]:
    """Every balance and ledger count, to prove a refusal changed nothing."""
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
        "departments": sorted(
            Department.objects.values_list("id", "name", "budget_credits", "allocated_credits", "deleted_at")
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


def assert_error(response, status: int, code: str) -> dict:
    """The response is an error in the one shape, with this status and code."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return body["error"]


def import_every_module() -> None:
    """Import every module of the three packages (migrations, settings and the wsgi/asgi entry
    points left out), so a check sees every class and task they define."""
    for package in (billing, organizations, orgbilling):
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if ".migrations" in module.name or module.name.endswith((".wsgi", ".asgi")):
                continue
            if module.name.startswith("orgbilling.settings."):
                continue  # each settings module is a whole configuration of its own
            importlib.import_module(module.name)


def modules_under(package: Path, names: tuple[str, ...]) -> list[Path]:
    """The ``.py`` files of ``package`` named by ``names``: a folder's whole tree, or one module
    (a name that does not exist is left out; the callers check that they found what they expect)."""
    found: list[Path] = []
    for name in names:
        path = package / name
        if path.is_dir():
            found.extend(sorted(path.rglob("*.py")))
        elif path.exists():
            found.append(path)
    return found
