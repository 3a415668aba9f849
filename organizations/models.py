"""Users, organizations and memberships: who may bill against which organization."""

import uuid
from typing import ClassVar

from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

# Path segments of the org-billing API that an org id would shadow (``/{org_id}/history``).
RESERVED_ORG_IDS = frozenset({"credits", "subscriptions", "billing", "usage", "charges", "webhooks"})

ORG_ID_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
    "Organization ids are 1-64 letters, digits, '-' or '_', starting with a letter or digit.",
)


class User(AbstractUser):
    """A person or service account. ``username`` holds the OIDC ``sub`` (the references'
    ``user_id``); ``is_staff`` marks a system admin."""

    class Meta:
        db_table = "users"

    def __str__(self) -> str:
        return self.username


class Organization(models.Model):
    """A team that shares one credit pool. The string ``id`` is the references' ``org_id``."""

    id = models.CharField(primary_key=True, max_length=64, validators=[ORG_ID_VALIDATOR])
    org_name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    billing_email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    byok_enabled = models.BooleanField(
        default=False,
        help_text="Members may send their own provider key (X-Provider-Key) through the gateway, "
        "charged 0; needs LLM_BYOK_ENABLED too. Set by an org admin.",
    )
    lago_customer_id = models.CharField(max_length=128, blank=True)
    stripe_customer_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "organizations"
        ordering = ["id"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(id__regex=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"),
                name="organizations_id_format",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.org_name} ({self.id})"


class OrganizationMember(models.Model):
    """A user's membership of an organization. Only ``active`` members may bill.

    An ``invited`` row is an invitation the user has not answered: it grants nothing (no
    access, no billing, no allocation) until the user accepts it. ``invited_email`` is the
    address the inviter typed (empty when they named the user by id): the inviter is shown
    that, never the account it matched.
    """

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INVITED = "invited", "Invited"
        SUSPENDED = "suspended", "Suspended"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    is_default = models.BooleanField(default=False)
    joined_at = models.DateTimeField(auto_now_add=True)
    invitation_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    invited_email = models.EmailField(blank=True)
    invited_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="An invitation's deadline")

    class Meta:
        db_table = "organization_members"
        ordering = ["org_id", "joined_at", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["org", "user"], name="organization_members_unique_org_user"),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(is_default=True),
                name="organization_members_one_default_per_user",
            ),
            models.CheckConstraint(
                condition=Q(role__in=["admin", "member"]), name="organization_members_role_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "invited", "suspended"]),
                name="organization_members_status_valid",
            ),
            # An invitation is never the organization that pays by default, and always has a
            # deadline and an id to answer it by.
            models.CheckConstraint(
                condition=~Q(status="invited")
                | (Q(is_default=False) & Q(expires_at__isnull=False) & Q(invitation_id__isnull=False)),
                name="organization_members_invited_shape",
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["user", "status"], name="org_members_user_status")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.org_id} ({self.role})"


class EmailInvitation(models.Model):
    """An invitation to an e-mail address no single account has yet. It waits, keyed by the
    lower-cased address, until someone signs in with that address *verified* by the identity
    provider; it then becomes that user's ``invited`` membership (same ``id``), which they
    accept or decline."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="email_invitations")
    email = models.EmailField(help_text="Lower-cased")
    role = models.CharField(
        max_length=16, choices=OrganizationMember.Role.choices, default=OrganizationMember.Role.MEMBER
    )
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    invited_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "organization_email_invitations"
        ordering = ["org_id", "invited_at", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["org", "email"], name="email_invitations_unique_org_email"),
            models.CheckConstraint(condition=Q(email=Lower("email")), name="email_invitations_lower"),
            models.CheckConstraint(
                condition=Q(role__in=["admin", "member"]), name="email_invitations_role_valid"
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["email"], name="email_invitations_email")]

    def __str__(self) -> str:
        return f"{self.email} invited to {self.org_id}"


class ApiKey(models.Model):
    """A long-lived credential for scripts, services and LLM clients (``obk_…``).

    Only the SHA-256 of the key is stored: the key is shown once, at creation. ``prefix`` (the
    first characters) lets people tell their keys apart. A key with an ``org`` acts on that
    organization only; ``scopes`` limit what it may do (``read``: safe methods, ``write``:
    changes, ``charge``: the service charge endpoint).
    """

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        CHARGE = "charge", "Charge"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The key's first characters, for recognising it")
    key_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 hex of the whole key")
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_keys"
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(key_hash__regex=r"^[0-9a-f]{64}$"), name="api_keys_hash_format"
            ),
            models.CheckConstraint(condition=Q(prefix__startswith="obk_"), name="api_keys_prefix_format"),
            models.CheckConstraint(
                condition=Q(scopes__contained_by=["read", "write", "charge"]), name="api_keys_scopes_valid"
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["user", "created_at"], name="api_keys_user_created"),
            models.Index(fields=["org", "created_at"], name="api_keys_org_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
