"""Every write of the organizations app, one module per topic, each function one transaction
with its audit event:

- ``memberships``: organizations and who belongs to them (create, rename, (de)activate, BYOK;
  add, change, suspend, remove, leave; the default org), under the last-admin guard;
- ``invitations``: invite (or, for system admins, add directly), accept, decline, revoke, claim
  by verified address, prune;
- ``identity``: users from the identity provider's claims, and users named directly (seeds,
  load tests, the dev admin);
- ``api_keys``: minting (shown once), revoking and recognising a presented key.

Callers outside the package import from here (``from organizations.services import
add_member``), as ``billing.services`` is the ledger's facade; a module of the package imports a
sibling by its module path. Reads are ``organizations.selectors``.
"""

from organizations.services.api_keys import (
    DEFAULT_SCOPES,
    KEY_PREFIX,
    authenticate_api_key,
    create_api_key,
    revoke_api_key,
)
from organizations.services.identity import (
    InvalidClaims,
    ensure_dev_superuser,
    ensure_user,
    sync_user_from_claims,
)
from organizations.services.invitations import (
    Invitation,
    accept_invitation,
    claim_email_invitations,
    decline_invitation,
    invite_member,
    invite_or_add_member,
    prune_expired_invitations,
    revoke_invitation,
)
from organizations.services.memberships import (
    SETTABLE_STATUSES,
    MemberRemoval,
    add_member,
    change_member_role,
    create_organization,
    leave_organization,
    remove_member,
    set_byok,
    set_default_organization,
    set_member_status,
    set_organization_active,
    update_member,
    update_organization,
)

__all__ = [
    "DEFAULT_SCOPES",
    "KEY_PREFIX",
    "SETTABLE_STATUSES",
    "InvalidClaims",
    "Invitation",
    "MemberRemoval",
    "accept_invitation",
    "add_member",
    "authenticate_api_key",
    "change_member_role",
    "claim_email_invitations",
    "create_api_key",
    "create_organization",
    "decline_invitation",
    "ensure_dev_superuser",
    "ensure_user",
    "invite_member",
    "invite_or_add_member",
    "leave_organization",
    "prune_expired_invitations",
    "remove_member",
    "revoke_api_key",
    "revoke_invitation",
    "set_byok",
    "set_default_organization",
    "set_member_status",
    "set_organization_active",
    "sync_user_from_claims",
    "update_member",
    "update_organization",
]
