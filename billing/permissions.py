"""Who may do what in the billing app, on top of ``organizations.permissions`` (whose
``acts_as_system_admin`` is the one "system admin" rule)."""

from dataclasses import dataclass

from billing.errors import DepartmentAccessDenied, DepartmentNotFound
from billing.selectors.departments import live_department_exists, managed_department_ids
from organizations.models import User
from organizations.permissions import OrgAccess, org_access, org_admin_access
from organizations.selectors import administers_org
from orgbilling.errors import Forbidden


def auto_topup_manager_access(*, user: User, org_id: str) -> OrgAccess:
    """Who may change auto top-up: the organization's own active admins. A system admin who is
    not one of them is refused (403): it charges the organization's card, so its admins
    decide, staff or not. 404/403 as ``org_admin_access`` first."""
    access = org_admin_access(user=user, org_id=org_id)
    if access.is_system_admin and not administers_org(user=user, org_id=access.org.id):
        raise Forbidden("Only the organization's admins set auto top-up.", details={"org_id": org_id})
    return access


@dataclass(frozen=True)
class AllocationAuthority:
    """Who may write an allocation: ``department_id`` None for the organization's admins (any
    allocation), else the one department a manager acts in (the service re-checks it under
    its locks)."""

    access: OrgAccess
    department_id: int | None


def allocation_writer_access(*, user: User, org_id: str) -> OrgAccess:
    """Who may write allocations at all: org admins and managers of a live department of the
    org; anyone else gets the org admins' 403 (before any user or allocation is looked up, so a
    member cannot probe user ids). 404 as ``org_access`` first."""
    access = org_access(user=user, org_id=org_id)
    if not access.is_admin and not managed_department_ids(user=user, org_id=access.org.id):
        org_admin_access(user=user, org_id=org_id)  # raises the org admins' 403
    return access


def allocation_access(*, user: User, org_id: str, department_id: int | None) -> AllocationAuthority:
    """Who may allocate, adjust, revoke or transfer an allocation of ``department_id`` (None:
    one outside every department, drawn from the pool directly).

    Org admins (and system admins) write every allocation. A manager of a department writes
    those of the departments they manage; the pool or another department is 403
    ``department_access_denied``: they are a member of the organization and see its departments,
    so there is nothing to hide, and the code says whom to ask. An unknown department (or one
    of another organization) is 404 ``department_not_found``; an organization the caller cannot
    see is 404 first; a member who manages nothing gets the org admins' 403."""
    access = org_access(user=user, org_id=org_id)
    if access.is_admin:
        return AllocationAuthority(access=access, department_id=None)
    managed = set(managed_department_ids(user=user, org_id=access.org.id))
    if not managed:
        org_admin_access(user=user, org_id=org_id)  # raises the org admins' 403
    if department_id is not None and not live_department_exists(
        org_id=access.org.id, department_id=department_id
    ):
        raise DepartmentNotFound(details={"org_id": access.org.id, "department_id": department_id})
    if department_id is None or department_id not in managed:
        raise DepartmentAccessDenied(details={"org_id": access.org.id, "department_id": department_id})
    return AllocationAuthority(access=access, department_id=department_id)


@dataclass(frozen=True)
class Deciders:
    """Whose credit requests a caller may decide: ``department_ids`` None for the organization's
    admins (every request), else the live departments a manager manages."""

    department_ids: frozenset[int] | None


def credit_request_decider_access(*, user: User, org_id: str) -> tuple[OrgAccess, Deciders]:
    """Who may approve or decline credit requests: org admins (and system admins) every request;
    a manager of a live department those of its members (the service checks which, under the
    request's lock: one they may not see is 404). Any other member gets the org admins' 403,
    before any request is looked up. Nobody decides their own: the service's rule."""
    access = org_access(user=user, org_id=org_id)
    if access.is_admin:
        return access, Deciders(department_ids=None)
    managed = managed_department_ids(user=user, org_id=access.org.id)
    if not managed:
        org_admin_access(user=user, org_id=org_id)  # raises the org admins' 403
    return access, Deciders(department_ids=frozenset(managed))
