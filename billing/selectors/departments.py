"""Reads of departments: who manages which, their figures, an allocation's department."""

from django.db.models import Exists, OuterRef, QuerySet, Sum
from django.db.models.functions import Coalesce

from billing.errors import DepartmentNotFound
from billing.models import Department, UserCreditAllocation
from organizations.models import Organization, User


def managed_department_ids(*, user: User, org_id: str) -> list[int]:
    """The live departments of ``org_id`` that ``user`` manages."""
    return list(
        Department.objects.filter(org_id=org_id, managers=user, deleted_at__isnull=True).values_list(
            "pk", flat=True
        )
    )


def live_department_exists(*, org_id: str, department_id: int) -> bool:
    return Department.objects.filter(org_id=org_id, pk=department_id, deleted_at__isnull=True).exists()


def _with_figures(departments: QuerySet[Department]) -> QuerySet[Department]:
    # ``used`` is read from the allocations (a charge never writes the department row).
    return departments.annotate(used=Coalesce(Sum("allocations__used_credits"), 0)).prefetch_related(
        "managers"
    )


def live_departments(*, org: Organization) -> QuerySet[Department]:
    """The org's live departments with their figures, oldest first."""
    return _with_figures(Department.objects.filter(org=org, deleted_at__isnull=True).order_by("id"))


def departments_visible_to(*, org: Organization, user: User, is_admin: bool) -> QuerySet[Department]:
    """The org's live departments for its admins; a manager sees the ones they manage; other
    members none."""
    departments = live_departments(org=org)
    if not is_admin:
        departments = departments.filter(
            Exists(Department.managers.through.objects.filter(department_id=OuterRef("pk"), user_id=user.pk))
        )
    return departments


def department_with_figures(*, org: Organization, department_id: int) -> Department:
    """One department of ``org`` with its ``used`` figure (deleted ones included), or 404."""
    department = _with_figures(Department.objects.filter(org=org, pk=department_id)).first()
    if department is None:
        raise DepartmentNotFound(details={"org_id": org.id, "department_id": department_id})
    return department


def allocation_department_id(*, org_id: str, user: User) -> int | None:
    """The department of the member's active allocation (None: outside departments, or none)."""
    return (
        UserCreditAllocation.objects.filter(org_id=org_id, user=user, is_active=True)
        .values_list("department_id", flat=True)
        .first()
    )
