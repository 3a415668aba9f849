"""Input and output serializers of the identity and membership API."""

from typing import Any

from rest_framework import serializers

from organizations.models import OrganizationMember
from organizations.services import SETTABLE_STATUSES
from orgbilling.api.fields import CreditsReadField, StrictCharField, StrictSerializer

CONTEXT_SOURCES = ["default", "oldest", "individual"]
ROLE_CHOICES = OrganizationMember.Role.choices
STATUS_CHOICES = OrganizationMember.Status.choices
SETTABLE_STATUS_CHOICES = [(status.value, status.label) for status in SETTABLE_STATUSES]
ADD_STATUS_CHOICES = [
    (status.value, status.label)
    for status in (OrganizationMember.Status.INVITED, OrganizationMember.Status.ACTIVE)
]


# Input ----------------------------------------------------------------------------------------


class DefaultOrgInput(StrictSerializer):
    org_id = StrictCharField(max_length=64)


class OrgMemberAddInput(StrictSerializer):
    """Exactly one of ``user_id`` and ``email`` names the invitee."""

    user_id = StrictCharField(max_length=150, required=False, help_text="The user's id (their OIDC `sub`)")
    email = serializers.EmailField(
        max_length=254, required=False, help_text="An e-mail address, with or without an account yet"
    )
    role = serializers.ChoiceField(
        choices=ROLE_CHOICES, default=OrganizationMember.Role.MEMBER, help_text="`member` unless given"
    )
    status = serializers.ChoiceField(
        choices=ADD_STATUS_CHOICES,
        default=OrganizationMember.Status.INVITED,
        help_text="`invited` unless given; `active` (a direct add, no consent asked) is for "
        "system admins only",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("user_id" in attrs) == ("email" in attrs):
            raise serializers.ValidationError(
                {"non_field_errors": ["Give exactly one of user_id and email."]}
            )
        return attrs


class OrgMemberUpdateInput(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLE_CHOICES, required=False)
    status = serializers.ChoiceField(choices=SETTABLE_STATUS_CHOICES, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError({"non_field_errors": ["Give a role or a status to change."]})
        return attrs


# Output ---------------------------------------------------------------------------------------


class MeUserSerializer(serializers.Serializer):
    user_id = serializers.CharField(source="username")
    email = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    is_system_admin = serializers.BooleanField(source="is_staff")


class MeOrganizationSerializer(serializers.Serializer):
    org_id = serializers.CharField()
    org_name = serializers.CharField(source="org.org_name")
    org_is_active = serializers.BooleanField(source="org.is_active")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    status = serializers.ChoiceField(choices=STATUS_CHOICES)
    is_default = serializers.BooleanField()
    joined_at = serializers.DateTimeField()


class MeBillingContextSerializer(serializers.Serializer):
    org_id = serializers.CharField(
        allow_null=True, help_text="The org that pays (null: the user's individual credits)"
    )
    # A declared field shadows ``Field.source`` only on the class body; DRF pops it at runtime.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=CONTEXT_SOURCES,
        help_text="Why this account pays: the default org, the oldest membership, or individual credits",
    )
    can_bill = serializers.BooleanField(
        help_text="false: requests naming no org are refused (see refusal_code) until this is fixed"
    )
    refusal_code = serializers.CharField(
        allow_null=True, help_text="The error billing answers, e.g. `organization_inactive`, `not_a_member`"
    )


class MeSerializer(serializers.Serializer):
    user = MeUserSerializer()
    organizations = MeOrganizationSerializer(many=True)
    default_org_id = serializers.CharField(
        allow_null=True,
        help_text="The org that pays for requests that name none (null: individual credits); "
        "equals billing_context.org_id",
    )
    billing_context = MeBillingContextSerializer()


class OrgMemberSerializer(serializers.Serializer):
    user_id = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    first_name = serializers.CharField(source="user.first_name")
    last_name = serializers.CharField(source="user.last_name")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    status = serializers.ChoiceField(choices=STATUS_CHOICES)
    joined_at = serializers.DateTimeField()


class OrgMemberRemovedSerializer(serializers.Serializer):
    removed = serializers.BooleanField()
    org_id = serializers.CharField()
    user_id = serializers.CharField()
    returned_to_pool = CreditsReadField(
        help_text="Unused credits of the revoked allocation, back in the pool"
    )


class InvitationSerializer(serializers.Serializer):
    """An invitation as its inviter sees it: what they typed, never the account it matched."""

    invitation_id = serializers.UUIDField(help_text="Revoke it by this id")
    org_id = serializers.CharField()
    email = serializers.CharField(allow_null=True, help_text="The address invited (null: by user_id)")
    user_id = serializers.CharField(allow_null=True, help_text="The user invited by id (null: by email)")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    status = serializers.ChoiceField(choices=[OrganizationMember.Status.INVITED.value])
    invited_by = serializers.CharField(allow_null=True, help_text="The inviter's user id")
    invited_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="Not acceptable after this; re-invite to refresh")


class MyInvitationSerializer(serializers.Serializer):
    """An invitation as its invitee sees it."""

    org_id = serializers.CharField()
    org_name = serializers.CharField(source="org.org_name")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    invited_by = serializers.SerializerMethodField(help_text="The inviter's user id")
    invited_by_name = serializers.SerializerMethodField(help_text="The inviter's name")
    invited_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()

    def get_invited_by(self, member: OrganizationMember) -> str | None:
        return member.invited_by.username if member.invited_by is not None else None

    def get_invited_by_name(self, member: OrganizationMember) -> str | None:
        inviter = member.invited_by
        return (inviter.get_full_name() or inviter.username) if inviter is not None else None


class InvitationDeclinedSerializer(serializers.Serializer):
    declined = serializers.BooleanField()
    org_id = serializers.CharField()


class InvitationRevokedSerializer(serializers.Serializer):
    revoked = serializers.BooleanField()
    invitation_id = serializers.UUIDField()


class LeftOrganizationSerializer(serializers.Serializer):
    left = serializers.BooleanField()
    org_id = serializers.CharField()
    returned_to_pool = CreditsReadField(
        help_text="Unused credits of your allocation, back in the organization's pool"
    )
