"""Identity and membership API routes, mounted at /api/v1/."""

from django.urls import path

from organizations.api.keys import ApiKeysView, ApiKeyView, OrgApiKeysView, OrgApiKeyView
from organizations.api.me import MeDefaultOrgView, MeView
from organizations.api.members import OrgMembersView, OrgMemberView

urlpatterns = [
    path("me", MeView.as_view(), name="api-me"),
    path("me/default-org", MeDefaultOrgView.as_view(), name="api-me-default-org"),
    path("organizations/<str:org_id>/members", OrgMembersView.as_view(), name="api-org-members"),
    path(
        "organizations/<str:org_id>/members/<str:user_id>",
        OrgMemberView.as_view(),
        name="api-org-member",
    ),
    path("keys", ApiKeysView.as_view(), name="api-keys"),
    path("keys/<int:key_id>", ApiKeyView.as_view(), name="api-key"),
    path("organizations/<str:org_id>/keys", OrgApiKeysView.as_view(), name="api-org-keys"),
    path("organizations/<str:org_id>/keys/<int:key_id>", OrgApiKeyView.as_view(), name="api-org-key"),
]
