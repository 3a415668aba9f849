"""``/portal/orgs/<org_id>/audit`` — the organization's audit log for its admins: newest first,
50 a page, filtered by action prefix and by actor. Access is the API's: another org is the 404
page, a member gets the API's 403 message."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing.portal.common import person, portal_page
from billing.selectors.org_activity import org_audit_events
from organizations.errors import OrganizationNotFound
from organizations.permissions import org_admin_access
from orgbilling.errors import ApplicationError


@require_GET
@portal_page
def audit_log(request: HttpRequest, org_id: str) -> HttpResponse:
    try:
        access = org_admin_access(user=person(request), org_id=org_id)
    except OrganizationNotFound:
        raise Http404("No such organization.") from None
    except ApplicationError as refusal:
        return render(
            request, "portal/refused.html", {"message": refusal.message}, status=refusal.status_code
        )
    page = request.GET.get("page", "1")
    action = request.GET.get("action", "").strip()[:64]
    actor = request.GET.get("actor", "").strip()[:150]
    events = org_audit_events(
        org_id=access.org.id, action=action, actor=actor, page=int(page) if page.isdigit() else 1
    )
    return render(
        request,
        "portal/org_audit.html",
        {"org": access.org, "audit": events, "action": action, "actor": actor},
    )
