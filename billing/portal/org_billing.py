"""The org page's money settings for admins: buy credits (Stripe Checkout: redirect there, come
back to the page), the subscription (change plan, cancel) and auto top-up. Each validates with
the API's input serializer and calls the API's service with the API's access check, through the
org page's admin action (a member gets the API's 403, another org is the 404 page, a refusal
changes nothing and shows the API's message next to the field)."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from billing.api.serializers.auto_topup import AutoTopUpInput
from billing.api.serializers.credits import CreditsAddInput
from billing.api.serializers.subscriptions import EmptyInput, PlanChangeInput
from billing.models import CreditPurchase
from billing.payments.auto_topup import update_auto_topup
from billing.permissions import auto_topup_manager_access
from billing.portal.common import form_values, person, portal_page
from billing.portal.org import admin_action
from billing.services.credits import credits_add
from billing.services.subscriptions import cancel_subscription, change_subscription_plan
from organizations.permissions import OrgAccess


@require_POST
@portal_page
def buy(request: HttpRequest, org_id: str) -> HttpResponse:
    """An org admin's card purchase: the API's ``credits_add`` opens a Checkout Session and the
    browser goes there; Stripe brings it back to the URL configured for Checkout's return."""
    checkout: list[str] = []

    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        result = credits_add(
            access=access,
            actor=person(request),
            credits=data.get("credits"),
            amount_usd=data.get("amount_usd"),
            purchase_amount=None,
            description=None,
        )
        if isinstance(result, CreditPurchase) and result.checkout_url:
            checkout.append(result.checkout_url)

    response = admin_action(
        request,
        org_id,
        form="buy",
        target="",
        serializer=CreditsAddInput,
        values=form_values(credits=request.POST.get("credits", "")),
        run=run,
        field_names=("credits", "amount_usd"),
        done="Credits added.",
    )
    if checkout and response.status_code == 302:
        return redirect(checkout[0])
    return response


@require_POST
@portal_page
def change_plan(request: HttpRequest, org_id: str) -> HttpResponse:
    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        change_subscription_plan(org_id=access.org.id, plan_code=data["plan_code"], actor=person(request))

    return admin_action(
        request,
        org_id,
        form="plan",
        target="",
        serializer=PlanChangeInput,
        values={"plan_code": request.POST.get("plan_code", "")},
        run=run,
        field_names=("plan_code",),
        done="The plan is changed.",
    )


@require_POST
@portal_page
def cancel_plan(request: HttpRequest, org_id: str) -> HttpResponse:
    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        cancel_subscription(org_id=access.org.id, actor=person(request))

    return admin_action(
        request,
        org_id,
        form="plan",
        target="",
        serializer=EmptyInput,
        values={},
        run=run,
        field_names=(),
        done="The subscription is canceled; credits already bought stay.",
    )


@require_POST
@portal_page
def auto_topup(request: HttpRequest, org_id: str) -> HttpResponse:
    """The API's PUT: the whole setting. A checkbox left unticked is ``false``, as a form says."""

    def run(access: OrgAccess, data: dict[str, Any]) -> None:
        update_auto_topup(org_id=access.org.id, actor=person(request), **data)

    values: dict[str, Any] = form_values(
        threshold_credits=request.POST.get("threshold_credits", ""),
        amount_credits=request.POST.get("amount_credits", ""),
        monthly_cap_usd=request.POST.get("monthly_cap_usd", ""),
    )
    values["enabled"] = request.POST.get("enabled") == "on"
    values["save_card_at_checkout"] = request.POST.get("save_card_at_checkout") == "on"
    return admin_action(
        request,
        org_id,
        form="topup",
        target="",
        serializer=AutoTopUpInput,
        values=values,
        run=run,
        field_names=("enabled", "threshold_credits", "amount_credits", "monthly_cap_usd"),
        done="Auto top-up settings saved.",
        authorize=auto_topup_manager_access,
    )
