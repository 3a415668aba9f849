"""The portal's routes: ``/`` (sign-in) and ``/portal/...``; included by ``orgbilling/urls.py``."""

from django.urls import path

from billing.portal import me, org, system
from billing.portal.signin import SignInView

app_name = "portal"

urlpatterns = [
    path("", SignInView.as_view(), name="signin"),
    path("portal/", me.my_credits, name="me"),
    path("portal/default-org", me.choose_default_org, name="default-org"),
    path(
        "portal/invitations/<str:org_id>/accept",
        me.answer_invitation,
        {"answer": "accept"},
        name="invitation-accept",
    ),
    path(
        "portal/invitations/<str:org_id>/decline",
        me.answer_invitation,
        {"answer": "decline"},
        name="invitation-decline",
    ),
    path("portal/keys", me.create_key, name="key-create"),
    path("portal/keys/<int:key_id>/revoke", me.revoke_key, name="key-revoke"),
    path("portal/system/", system.system_overview, name="system"),
    path("portal/orgs/<str:org_id>/", org.org_billing, name="org"),
    path("portal/orgs/<str:org_id>/allocate", org.allocate, name="org-allocate"),
    path("portal/orgs/<str:org_id>/transfer", org.transfer, name="org-transfer"),
    path("portal/orgs/<str:org_id>/revoke", org.revoke, name="org-revoke"),
]
