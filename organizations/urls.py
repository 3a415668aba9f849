"""Every organizations route: the identity, membership, invitation and API-key API, mounted at
/api/v1/ by the root URL configuration. Paths and names are the API contract (tests use
``reverse()``)."""

from django.urls import path

from organizations.api.api_keys import ApiKeysView, ApiKeyView, OrgApiKeysView, OrgApiKeyView
from organizations.api.invitations import (
    MeLeaveOrganizationView,
    MyInvitationAcceptView,
    MyInvitationDeclineView,
    MyInvitationsView,
    OrgInvitationsView,
    OrgInvitationView,
)
from organizations.api.me import MeDefaultOrgView, MeView
from organizations.api.members import OrgMembersView, OrgMemberView

urlpatterns = [
    path("me", MeView.as_view(), name="api-me"),
    path("me/default-org", MeDefaultOrgView.as_view(), name="api-me-default-org"),
    path("me/invitations", MyInvitationsView.as_view(), name="api-me-invitations"),
    path(
        "me/invitations/<str:org_id>/accept",
        MyInvitationAcceptView.as_view(),
        name="api-me-invitation-accept",
    ),
    path(
        "me/invitations/<str:org_id>/decline",
        MyInvitationDeclineView.as_view(),
        name="api-me-invitation-decline",
    ),
    path("me/organizations/<str:org_id>/leave", MeLeaveOrganizationView.as_view(), name="api-me-org-leave"),
    path("organizations/<str:org_id>/invitations", OrgInvitationsView.as_view(), name="api-org-invitations"),
    path(
        "organizations/<str:org_id>/invitations/<uuid:invitation_id>",
        OrgInvitationView.as_view(),
        name="api-org-invitation",
    ),
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
