"""Typed refusals about users, organizations and memberships (billing.errors re-exports the
ones billing raises). Each has a stable code and an HTTP status."""

from orgbilling.errors import ApplicationError, Conflict, NotFound, ValidationFailed

__all__ = [
    "AlreadyMember",
    "AmbiguousEmail",
    "ApiKeyNotFound",
    "InvitationExpired",
    "InvitationNotFound",
    "LastAdmin",
    "MemberNotFound",
    "NotAMember",
    "OrganizationInactive",
    "OrganizationNotFound",
    "UserNotFound",
]


class LastAdmin(Conflict):
    code = "last_admin"
    default_message = "An organization must keep at least one active admin."


class AlreadyMember(Conflict):
    code = "already_member"
    default_message = "The user is already a member of this organization."


class MemberNotFound(NotFound):
    # Suspended and invited members are members too; this is "no membership row at all".
    code = "member_not_found"
    default_message = "The user is not a member of this organization."


class AmbiguousEmail(ValidationFailed):
    code = "ambiguous_email"
    default_message = "Several users have this email address; add the user by user_id."


class InvitationNotFound(NotFound):
    code = "invitation_not_found"
    default_message = "There is no pending invitation to this organization."


class InvitationExpired(ApplicationError):
    # 410: the invitation existed but is gone for good; the inviter can send a fresh one.
    status_code = 410
    code = "invitation_expired"
    default_message = "This invitation has expired; ask the organization's admin to invite you again."


class OrganizationNotFound(NotFound):
    code = "organization_not_found"
    default_message = "Organization not found."


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "User not found."


class NotAMember(NotFound):
    # 404 rather than 403: whether an organization exists is not the caller's business.
    code = "not_a_member"
    default_message = "The user is not an active member of this organization."


class OrganizationInactive(ApplicationError):
    status_code = 403
    code = "organization_inactive"
    default_message = "The organization is deactivated."


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    default_message = "API key not found."
