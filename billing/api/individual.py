"""Individual credits: ``GET /api/v1/me/credits``, ``POST /api/v1/me/credits/purchase`` (any
signed-in user, for themselves) and ``POST /api/v1/admin/users/{user_id}/individual-credits/grant``
(system admins)."""

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import user_by_id, valid_input
from billing.api.serializers.individual import (
    ADMIN_INDIVIDUAL_GRANT_SCHEMA,
    MY_CREDITS_PURCHASE_SCHEMA,
    MY_CREDITS_SCHEMA,
    IndividualCheckoutSerializer,
    IndividualCreditsSerializer,
    IndividualGrantedSerializer,
    IndividualGrantInput,
    IndividualPurchaseInput,
)
from billing.payments.individual_purchases import start_individual_purchase
from billing.selectors.individual import individual_credits_of
from billing.services import grant_individual_credits
from organizations.api.common import caller
from organizations.permissions import acts_as_system_admin
from orgbilling.api.idempotency import idempotent
from orgbilling.errors import Forbidden


class MyCreditsView(APIView):
    @MY_CREDITS_SCHEMA
    def get(self, request: Request) -> Response:
        return Response(IndividualCreditsSerializer(individual_credits_of(user=caller(request))).data)


class MyCreditsPurchaseView(APIView):
    @MY_CREDITS_PURCHASE_SCHEMA
    @idempotent(atomic=False)  # calls Stripe mid-way; the purchase row and Stripe's key dedupe
    def post(self, request: Request) -> Response:
        data = valid_input(IndividualPurchaseInput, request)
        purchase = start_individual_purchase(
            user=caller(request), credits=data.get("credits"), amount_usd=data.get("amount_usd")
        )
        body = {"purchase": purchase, "checkout_url": purchase.checkout_url}
        return Response(IndividualCheckoutSerializer(body).data, status=status.HTTP_201_CREATED)


class AdminIndividualGrantView(APIView):
    @ADMIN_INDIVIDUAL_GRANT_SCHEMA
    @idempotent
    def post(self, request: Request, user_id: str) -> Response:
        actor = caller(request)
        if not acts_as_system_admin(actor):
            raise Forbidden("Only system admins can grant individual credits.", details={"user_id": user_id})
        data = valid_input(IndividualGrantInput, request)
        user = user_by_id(user_id)
        change = grant_individual_credits(
            user=user, amount=data["credits"], actor=actor, actor_label="api", reason=data["reason"]
        )
        balance = change.balance
        body = {
            "user_id": user.username,
            "credits_granted": data["credits"],
            "entry": change.entry,
            "balance": {
                "total_credits": balance.total_credits,
                "used_credits": balance.used_credits,
                "reserved_credits": balance.reserved_credits,
                "available_credits": balance.free_credits,
            },
        }
        return Response(IndividualGrantedSerializer(body).data)
