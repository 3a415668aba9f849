"""Writes to organizations and memberships. Each function is one transaction with its audit."""

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from billing.errors import OrganizationNotFound
from billing.models import OrganizationCreditPool
from billing.services.audit import record_audit_event
from organizations.models import ORG_ID_VALIDATOR, Organization, OrganizationMember, User
from orgbilling.errors import Conflict, ValidationFailed


def create_organization(
    *,
    org_id: str,
    org_name: str,
    created_by: User | None,
    billing_email: str = "",
    slug: str | None = None,
    actor_label: str = "",
) -> Organization:
    """Create an organization with its empty credit pool; the creator becomes its admin."""
    try:
        ORG_ID_VALIDATOR(org_id)
    except Exception:
        raise ValidationFailed(
            "Organization ids are 1-64 letters, digits, '-' or '_'.", details={"org_id": org_id}
        ) from None
    if not org_name.strip():
        raise ValidationFailed("An organization needs a name.", details={"org_name": org_name})
    slug = slug or slugify(org_id)[:64] or org_id.lower()
    try:
        return _create_organization(org_id, org_name, created_by, billing_email, slug, actor_label)
    except IntegrityError:
        # Created concurrently by someone else between our check and our insert.
        raise Conflict("An organization with this id or slug exists.", details={"org_id": org_id}) from None


def _create_organization(
    org_id: str, org_name: str, created_by: User | None, billing_email: str, slug: str, actor_label: str
) -> Organization:
    with transaction.atomic():
        if Organization.objects.filter(pk=org_id).exists() or Organization.objects.filter(slug=slug).exists():
            raise Conflict("An organization with this id or slug exists.", details={"org_id": org_id})
        org = Organization.objects.create(
            id=org_id,
            org_name=org_name.strip(),
            slug=slug,
            created_by=created_by,
            billing_email=billing_email,
        )
        OrganizationCreditPool.objects.create(org=org)
        if created_by is not None:
            OrganizationMember.objects.create(
                org=org,
                user=created_by,
                role=OrganizationMember.Role.ADMIN,
                is_default=not OrganizationMember.objects.filter(user=created_by, is_default=True).exists(),
            )
        record_audit_event(
            action="organization.created",
            actor=created_by,
            actor_label=actor_label,
            org_id=org.id,
            target_type="organization",
            target_id=org.id,
            metadata={"org_name": org.org_name},
        )
    return org


def add_member(
    *,
    org_id: str,
    user: User,
    role: str = OrganizationMember.Role.MEMBER,
    is_default: bool = False,
    actor: User | None = None,
    actor_label: str = "",
) -> OrganizationMember:
    """Add an existing user to an organization as an active member."""
    if role not in OrganizationMember.Role.values:
        raise ValidationFailed("Unknown role.", details={"role": role})
    with transaction.atomic():
        if not Organization.objects.filter(pk=org_id).exists():
            raise OrganizationNotFound(details={"org_id": org_id})
        if OrganizationMember.objects.filter(org_id=org_id, user=user).exists():
            raise Conflict(
                "The user is already a member.", details={"org_id": org_id, "user_id": user.username}
            )
        if is_default:
            OrganizationMember.objects.filter(user=user, is_default=True).update(is_default=False)
        member = OrganizationMember.objects.create(org_id=org_id, user=user, role=role, is_default=is_default)
        record_audit_event(
            action="member.added",
            actor=actor,
            actor_label=actor_label,
            org_id=org_id,
            target_type="member",
            target_id=user.username,
            metadata={"role": role},
        )
    return member


def set_default_organization(*, user: User, org_id: str) -> OrganizationMember:
    """Make ``org_id`` the organization that pays for the user's requests by default."""
    with transaction.atomic():
        member = (
            OrganizationMember.objects.select_for_update()
            .filter(user=user, org_id=org_id, status=OrganizationMember.Status.ACTIVE)
            .first()
        )
        if member is None:
            raise OrganizationNotFound(details={"org_id": org_id})
        OrganizationMember.objects.filter(user=user, is_default=True).exclude(pk=member.pk).update(
            is_default=False
        )
        member.is_default = True
        member.save(update_fields=["is_default"])
        record_audit_event(
            action="member.default_org_set",
            actor=user,
            org_id=org_id,
            target_type="member",
            target_id=user.username,
        )
    return member


def ensure_user(*, username: str, email: str = "", first_name: str = "", last_name: str = "") -> User:
    """Get or create a user by ``username`` (the OIDC ``sub``); fills empty profile fields."""
    user, created = User.objects.get_or_create(
        username=username, defaults={"email": email, "first_name": first_name, "last_name": last_name}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def ensure_dev_superuser(*, username: str, password: str) -> User:
    """The local development admin: staff, superuser, with the given password."""
    with transaction.atomic():
        user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@localhost"})
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(password)
        user.save()
    return user
