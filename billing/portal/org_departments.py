"""What the org page shows about departments and credit requests: admins and department
managers see the departments they oversee (budget, allocated, used, a bar each) and the pending
requests they may decide; a member sees their own requests. Reads only (the selectors')."""

from dataclasses import dataclass
from typing import Any

from billing.models import CreditRequest, Department
from billing.selectors.credit_requests import credit_requests_visible_to
from billing.selectors.departments import departments_visible_to
from organizations.models import User
from organizations.permissions import OrgAccess

# The forms of this part of the page (``org_requests``): it shows their refusals itself.
OWN_FORMS = ("request", "decide", "department")
# The page lists this many pending requests (oldest first) and this many of the member's own.
PENDING_LIMIT = 50
MINE_LIMIT = 10


@dataclass(frozen=True)
class DepartmentRow:
    department: Department
    used_credits: int
    percent_allocated: int
    percent_used: int


def _percent(part: int, whole: int) -> int:
    return min(100, part * 100 // whole) if whole > 0 else 0


def _rows(departments: list[Department]) -> list[DepartmentRow]:
    return [
        DepartmentRow(
            department=d,
            used_credits=d.used,  # type: ignore[attr-defined]
            percent_allocated=_percent(d.allocated_credits, d.budget_credits),
            percent_used=_percent(d.used, d.budget_credits),  # type: ignore[attr-defined]
        )
        for d in departments
    ]


def departments_and_requests(*, access: OrgAccess, user: User) -> dict[str, Any]:
    """The page's departments and requests part: ``departments`` (admins: all live ones;
    managers: theirs), ``pending_requests`` the caller may decide (their own is listed but
    has no buttons), and ``my_requests`` for members who are not admins."""
    departments = _rows(
        # The managers are not shown: no prefetch (the enterprise page counts its queries).
        list(
            departments_visible_to(org=access.org, user=user, is_admin=access.is_admin).prefetch_related(None)
        )
    )
    context: dict[str, Any] = {
        "departments": departments,
        "manages": bool(departments) and not access.is_admin,
    }
    if access.is_admin or departments:
        visible = credit_requests_visible_to(org=access.org, user=user, is_admin=access.is_admin)
        context["pending_requests"] = list(
            visible.filter(status=CreditRequest.Status.PENDING)
            .exclude(requester=user)
            .order_by("created_at", "id")[:PENDING_LIMIT]
        )
    if not access.is_admin:
        context["my_requests"] = list(
            CreditRequest.objects.filter(org=access.org, requester=user).order_by("-created_at", "-id")[
                :MINE_LIMIT
            ]
        )
    return context
