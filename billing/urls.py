"""Every billing route: the portal's pages (``/`` sign-in, ``/portal/...``) and, under their
three prefixes, the org-billing API, the LLM gateway and the payment providers' webhooks.
Paths and names are the API contract (tests use ``reverse()``).

Organization ids in the report paths must look like organization ids, so a malformed one is a
plain 404. ``<org_id>/history`` comes last: it is the broadest pattern and must not shadow the
others.
"""

from django.urls import include, path, re_path

from billing.api.allocations import AllocationDetailView, AllocationListView, CreditTransferView
from billing.api.auto_topup import AutoTopUpView
from billing.api.byok import ByokView
from billing.api.credit_requests import (
    CreditRequestApproveView,
    CreditRequestCancelView,
    CreditRequestDeclineView,
    CreditRequestListView,
)
from billing.api.credits import CreditPoolView, CreditsAddView, CreditsAllocateView
from billing.api.dashboards import OrgDashboardView, SystemDashboardView, UserDashboardView
from billing.api.departments import DepartmentDetailView, DepartmentListView
from billing.api.external_charges import ChargeView
from billing.api.grants import CreditGrantListView
from billing.api.individual import AdminIndividualGrantView, MyCreditsPurchaseView, MyCreditsView
from billing.api.reports import (
    OrgHistoryView,
    OrgUsageView,
    UsageByDepartmentView,
    UsageByModelView,
    UsageByUserView,
)
from billing.api.subscriptions import (
    SubscriptionCancelView,
    SubscriptionCreateView,
    SubscriptionDetailView,
    SubscriptionUpgradeView,
)
from billing.gateway import views as gateway_views
from billing.portal import me, org, org_audit, org_billing, org_members, org_requests, system
from billing.portal.signin import SignInView
from billing.webhooks.views import lago_webhook, stripe_webhook

ORG_ID = r"(?P<org_id>[A-Za-z0-9][A-Za-z0-9_-]{0,63})"

subscription_urls = [
    path("subscriptions", SubscriptionCreateView.as_view(), name="org-billing-subscription-create"),
    path(
        "subscriptions/<str:org_id>", SubscriptionDetailView.as_view(), name="org-billing-subscription-detail"
    ),
    path(
        "subscriptions/<str:org_id>/upgrade",
        SubscriptionUpgradeView.as_view(),
        name="org-billing-subscription-upgrade",
    ),
    path(
        "subscriptions/<str:org_id>/cancel",
        SubscriptionCancelView.as_view(),
        name="org-billing-subscription-cancel",
    ),
]

credit_urls = [
    path("credits/<str:org_id>", CreditPoolView.as_view(), name="org-billing-credit-pool"),
    path("credits/<str:org_id>/add", CreditsAddView.as_view(), name="org-billing-credits-add"),
    path("credits/<str:org_id>/allocate", CreditsAllocateView.as_view(), name="org-billing-credits-allocate"),
    path("credits/<str:org_id>/allocations", AllocationListView.as_view(), name="org-billing-allocations"),
    path("credits/<str:org_id>/grants", CreditGrantListView.as_view(), name="org-billing-credit-grants"),
    path(
        "credits/<str:org_id>/allocations/<str:user_id>",
        AllocationDetailView.as_view(),
        name="org-billing-allocation-detail",
    ),
    path("credits/<str:org_id>/transfer", CreditTransferView.as_view(), name="org-billing-credits-transfer"),
    path("credits/<str:org_id>/departments", DepartmentListView.as_view(), name="org-billing-departments"),
    path(
        "credits/<str:org_id>/departments/<int:department_id>",
        DepartmentDetailView.as_view(),
        name="org-billing-department-detail",
    ),
    path(
        "credits/<str:org_id>/requests", CreditRequestListView.as_view(), name="org-billing-credit-requests"
    ),
    path(
        "credits/<str:org_id>/requests/<int:request_id>/approve",
        CreditRequestApproveView.as_view(),
        name="org-billing-credit-request-approve",
    ),
    path(
        "credits/<str:org_id>/requests/<int:request_id>/decline",
        CreditRequestDeclineView.as_view(),
        name="org-billing-credit-request-decline",
    ),
    path(
        "credits/<str:org_id>/requests/<int:request_id>/cancel",
        CreditRequestCancelView.as_view(),
        name="org-billing-credit-request-cancel",
    ),
]

external_charge_urls = [
    path("charges", ChargeView.as_view(), name="org-billing-charges"),
]

report_urls = [
    re_path(rf"^credits/{ORG_ID}/usage$", OrgUsageView.as_view(), name="org-billing-credits-usage"),
    path("billing/user", UserDashboardView.as_view(), name="org-billing-user-dashboard"),
    path("billing/system", SystemDashboardView.as_view(), name="org-billing-system-dashboard"),
    re_path(rf"^billing/org/{ORG_ID}$", OrgDashboardView.as_view(), name="org-billing-org-dashboard"),
    re_path(rf"^usage/{ORG_ID}/by-user$", UsageByUserView.as_view(), name="org-billing-usage-by-user"),
    re_path(rf"^usage/{ORG_ID}/by-model$", UsageByModelView.as_view(), name="org-billing-usage-by-model"),
    re_path(
        rf"^usage/{ORG_ID}/by-department$",
        UsageByDepartmentView.as_view(),
        name="org-billing-usage-by-department",
    ),
    re_path(rf"^{ORG_ID}/history$", OrgHistoryView.as_view(), name="org-billing-history"),
]

settings_urls = [
    path("credits/<str:org_id>/auto-topup", AutoTopUpView.as_view(), name="org-billing-auto-topup"),
    path("credits/<str:org_id>/byok", ByokView.as_view(), name="org-billing-byok"),
]

gateway_urls = [
    # OpenAI's paths (SDKs take /api/v1/llm/ as base_url), in the "llm" namespace.
    path("chat/completions", gateway_views.chat_completions, name="chat-completions"),
    path("images/generations", gateway_views.image_generations, name="image-generations"),
    path("models", gateway_views.models, name="models"),
]

# A user's own (individual) credits, and the system admins' grant of them.
individual_urls = [
    path("me/credits", MyCreditsView.as_view(), name="api-me-credits"),
    path("me/credits/purchase", MyCreditsPurchaseView.as_view(), name="api-me-credits-purchase"),
    path(
        "admin/users/<str:user_id>/individual-credits/grant",
        AdminIndividualGrantView.as_view(),
        name="api-admin-individual-credits-grant",
    ),
]

webhook_urls = [
    path("lago", lago_webhook, name="webhook-lago"),
    path("stripe", stripe_webhook, name="webhook-stripe"),
]

# The portal: server-rendered pages for people (namespace "portal").
portal_urls = [
    path("", SignInView.as_view(), name="signin"),
    path("portal/", me.my_credits, name="me"),
    path("portal/default-org", me.choose_default_org, name="default-org"),
    path("portal/credits/buy", me.buy_credits, name="credits-buy"),
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
    path("portal/orgs/<str:org_id>/invite", org_members.invite, name="org-invite"),
    path("portal/orgs/<str:org_id>/adjust", org_members.adjust, name="org-adjust"),
    path("portal/orgs/<str:org_id>/remove", org_members.remove, name="org-remove"),
    path("portal/orgs/<str:org_id>/buy", org_billing.buy, name="org-buy"),
    path("portal/orgs/<str:org_id>/plan", org_billing.change_plan, name="org-plan"),
    path("portal/orgs/<str:org_id>/cancel", org_billing.cancel_plan, name="org-cancel"),
    path("portal/orgs/<str:org_id>/auto-topup", org_billing.auto_topup, name="org-auto-topup"),
    path("portal/orgs/<str:org_id>/audit", org_audit.audit_log, name="org-audit"),
    path("portal/orgs/<str:org_id>/requests", org_requests.ask, name="org-request"),
    path("portal/orgs/<str:org_id>/requests/cancel", org_requests.cancel, name="org-request-cancel"),
    path("portal/orgs/<str:org_id>/requests/approve", org_requests.approve, name="org-request-approve"),
    path("portal/orgs/<str:org_id>/requests/decline", org_requests.decline, name="org-request-decline"),
    path(
        "portal/orgs/<str:org_id>/departments", org_requests.department_create, name="org-department-create"
    ),
    path(
        "portal/orgs/<str:org_id>/departments/edit", org_requests.department_edit, name="org-department-edit"
    ),
]

urlpatterns = [
    path("", include((portal_urls, "portal"))),
    path(
        "api/v1/org-billing/",
        include(subscription_urls + credit_urls + external_charge_urls + report_urls + settings_urls),
    ),
    path("api/v1/", include(individual_urls)),
    path("api/v1/llm/", include((gateway_urls, "llm"))),
    path("api/v1/webhooks/", include(webhook_urls)),
]
