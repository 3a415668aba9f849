"""Who may do what in the billing app, on top of ``organizations.permissions`` (whose
``acts_as_system_admin`` is the one "system admin" rule)."""

from organizations.models import User
from organizations.permissions import OrgAccess, org_admin_access
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
