"""``/portal/`` — my credits (the reference's ``UserBillingDashboard``): every organization I
belong to with my allocation in it, my usage over the last days as a chart, who pays by default,
pending invitations, my individual credits, my API keys.

Each action is a form posted to its own URL; it validates with the API's own input serializer,
calls the API's service, then redirects back (or, refused, shows the page again with the API's
message next to the field and the API's status). A created key is shown once, in the answer to
the form that created it.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from rest_framework import serializers

from billing.api.serializers.individual import IndividualPurchaseInput
from billing.payments.individual_purchases import start_individual_purchase
from billing.portal.common import (
    FormErrors,
    form_values,
    person,
    portal_page,
    refusal_errors,
    validation_errors,
)
from billing.selectors.dashboards import user_dashboard
from billing.selectors.individual import recent_individual_purchases
from billing.selectors.my_usage import UsageChart, my_usage_chart
from organizations.api.lookups import my_invitations
from organizations.api.serializers.api_keys import ApiKeyCreateInput
from organizations.api.serializers.me import DefaultOrgInput
from organizations.models import ApiKey
from organizations.selectors import own_api_key, user_api_keys
from organizations.services import (
    accept_invitation,
    create_api_key,
    decline_invitation,
    revoke_api_key,
    set_default_organization,
)
from organizations.services.api_keys import DEFAULT_SCOPES
from orgbilling.errors import ApplicationError
from orgbilling.money import millicredits_to_credits

# The newest keys are listed; the rest are counted (revoked keys pile up over the years).
KEYS_SHOWN = 50
# The latest card purchases of individual credits shown; the API lists them too.
PURCHASES_SHOWN = 10


def _chart_data(chart: UsageChart) -> dict[str, Any]:
    """What the page's script draws: credits (not millicredits) per local day, one series per model."""
    return {
        "labels": [day.isoformat() for day in chart.days],
        "series": [
            {"label": s.model, "data": [millicredits_to_credits(mc) for mc in s.credits_used]}
            for s in chart.series
        ],
        "unit": "credits",
    }


def _page(
    request: HttpRequest, *, errors: FormErrors | None = None, new_key: dict[str, Any] | None = None
) -> HttpResponse:
    user = person(request)
    errors = errors or FormErrors()
    dashboard = user_dashboard(user=user)
    keys = list(user_api_keys(user=user)[: KEYS_SHOWN + 1])
    chart = my_usage_chart(
        user=user, now=timezone.now(), days=settings.PORTAL_USAGE_DAYS, tz=timezone.get_current_timezone()
    )
    invitations = my_invitations(user=user)
    rows = {
        "key": {str(key.pk) for key in keys[:KEYS_SHOWN]},
        "invitation": {invitation.org_id for invitation in invitations},
    }
    # A refusal about a row the page does not show (someone else's key, an answered
    # invitation) is shown at the top of the page.
    unplaced = errors.general if errors.form in rows and errors.target not in rows[errors.form] else []
    context = {
        "dashboard": dashboard,
        "unplaced_errors": unplaced,
        "payable_orgs": [org for org in dashboard.organizations if org.org_is_active],
        "invitations": invitations,
        "keys": keys[:KEYS_SHOWN],
        "purchases": recent_individual_purchases(user=user, recent=PURCHASES_SHOWN),
        "more_keys": len(keys) > KEYS_SHOWN,
        "scope_choices": ApiKey.Scope.choices,
        "default_scopes": DEFAULT_SCOPES,
        "chart": chart,
        "chart_data": _chart_data(chart),
        "usage_days": settings.PORTAL_USAGE_DAYS,
        "errors": errors,
        "new_key": new_key,
        "now": timezone.now(),
        "time_zone": str(timezone.get_current_timezone()),
    }
    return render(request, "portal/me.html", context, status=errors.status if errors else 200)


@require_GET
@portal_page
def my_credits(request: HttpRequest) -> HttpResponse:
    return _page(request)


def _act(
    request: HttpRequest,
    *,
    form: str,
    values: dict[str, Any],
    run: Callable[[], Any],
    serializer: type[serializers.Serializer] | None = None,
    field_names: tuple[str, ...] = (),
    target: str = "",
) -> HttpResponse | None:
    """Validate ``values`` with the API's serializer, then ``run`` the service; on a refusal,
    the page again with the API's words. ``None`` when it went through."""
    shown = {name: value for name, value in values.items() if isinstance(value, str)}
    if serializer is not None:
        data = serializer(data=values)
        if not data.is_valid():
            return _page(request, errors=validation_errors(form, data.errors, shown, target))
    try:
        run()
    except ApplicationError as refusal:
        return _page(request, errors=refusal_errors(form, refusal, shown, field_names, target))
    return None


@require_POST
@portal_page
def choose_default_org(request: HttpRequest) -> HttpResponse:
    org_id = request.POST.get("org_id", "")
    refused = _act(
        request,
        form="default_org",
        values={"org_id": org_id},
        serializer=DefaultOrgInput,
        run=lambda: set_default_organization(user=person(request), org_id=org_id),
        field_names=("org_id",),
    )
    if refused is not None:
        return refused
    messages.success(request, "Your default organization is saved: it pays for requests that name none.")
    return redirect("portal:me")


@require_POST
@portal_page
def answer_invitation(request: HttpRequest, org_id: str, answer: str) -> HttpResponse:
    service = accept_invitation if answer == "accept" else decline_invitation
    refused = _act(
        request,
        form="invitation",
        target=org_id,
        values={},
        run=lambda: service(user=person(request), org_id=org_id),
    )
    if refused is not None:
        return refused
    messages.success(
        request, "Invitation accepted: you are a member." if answer == "accept" else "Invitation declined."
    )
    return redirect("portal:me")


@require_POST
@portal_page
def create_key(request: HttpRequest) -> HttpResponse:
    user = person(request)
    values: dict[str, Any] = {
        "name": request.POST.get("name", ""),
        "org_id": request.POST.get("org_id") or None,
        "expires_at": request.POST.get("expires_at") or None,
        "scopes": request.POST.getlist("scopes"),
    }
    data = ApiKeyCreateInput(data=values)
    shown = {name: value for name, value in values.items() if isinstance(value, str)}
    if not data.is_valid():
        return _page(request, errors=validation_errors("create_key", data.errors, shown))
    valid = data.validated_data
    try:
        key, raw_key = create_api_key(
            user=user,
            name=valid["name"],
            org_id=valid.get("org_id"),
            expires_at=valid.get("expires_at"),
            scopes=valid.get("scopes", DEFAULT_SCOPES),
        )
    except ApplicationError as refusal:
        return _page(
            request, errors=refusal_errors("create_key", refusal, shown, ("org_id", "expires_at", "scopes"))
        )
    return _page(request, new_key={"key": raw_key, "name": key.name, "id": key.pk})


@require_POST
@portal_page
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    user = person(request)

    def revoke() -> None:
        revoke_api_key(key_id=own_api_key(user=user, key_id=key_id).pk, actor=user)

    refused = _act(request, form="key", target=str(key_id), values={}, run=revoke)
    if refused is not None:
        return refused
    messages.success(request, "API key revoked: it stops working at once.")
    return redirect("portal:me")


@require_POST
@portal_page
def buy_credits(request: HttpRequest) -> HttpResponse:
    """Individual credits by card, the API's ``POST /api/v1/me/credits/purchase``: the same
    serializer and service open a Checkout Session and the browser goes there; the webhook
    credits the balance once Stripe says paid. Without Stripe: the API's 503, on the page."""
    typed = request.POST.get("credits", "")
    data = IndividualPurchaseInput(data=form_values(credits=typed))
    if not data.is_valid():
        return _page(request, errors=validation_errors("buy", data.errors, {"credits": typed}))
    checkout: list[str] = []

    def run() -> None:
        purchase = start_individual_purchase(user=person(request), credits=data.validated_data["credits"])
        checkout.append(purchase.checkout_url)

    refused = _act(request, form="buy", values={"credits": typed}, run=run, field_names=("credits",))
    if refused is not None:
        return refused
    return redirect(checkout[0])
