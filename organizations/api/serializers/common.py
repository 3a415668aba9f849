"""What the serializers and schemas of several areas share."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from organizations.models import OrganizationMember

ROLE_CHOICES = OrganizationMember.Role.choices
STATUS_CHOICES = OrganizationMember.Status.choices

ORG_ID_PARAM = OpenApiParameter(
    "org_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Organization id (`org_abc123`)"
)
