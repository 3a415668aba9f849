"""GET/PUT /credits/{org_id}/auto-topup: an organization's auto top-up settings (org admins
change them; system admins may read them)."""

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import valid_input
from billing.api.serializers.auto_topup import (
    AUTO_TOPUP_RETRIEVE_SCHEMA,
    AUTO_TOPUP_UPDATE_SCHEMA,
    AutoTopUpInput,
    AutoTopUpSerializer,
)
from billing.models import AutoTopUpSettings
from billing.payments.auto_topup import auto_topup_spent_this_month, update_auto_topup
from billing.permissions import auto_topup_manager_access
from billing.selectors.auto_topup import auto_topup_settings_of
from organizations.api.common import caller
from organizations.permissions import org_admin_access


def _render(org_id: str, row: AutoTopUpSettings | None) -> dict[str, Any]:
    body = {
        "org_id": org_id,
        "configured": row is not None,
        "enabled": bool(row and row.enabled),
        "threshold_credits": row.threshold_credits if row else None,
        "amount_credits": row.amount_credits if row else None,
        "monthly_cap_usd": row.monthly_cap_usd if row else None,
        "save_card_at_checkout": bool(row and row.save_card_at_checkout),
        "has_saved_card": bool(row and row.stripe_payment_method_id),
        "consecutive_failures": row.consecutive_failures if row else 0,
        "disabled_reason": row.disabled_reason if row else "",
        "spent_this_month_usd": auto_topup_spent_this_month(org_id=org_id),
        "updated_at": row.updated_at if row else None,
    }
    return dict(AutoTopUpSerializer(body).data)


class AutoTopUpView(APIView):
    @AUTO_TOPUP_RETRIEVE_SCHEMA
    def get(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        return Response(_render(access.org.id, auto_topup_settings_of(org_id=access.org.id)))

    @AUTO_TOPUP_UPDATE_SCHEMA
    def put(self, request: Request, org_id: str) -> Response:
        access = auto_topup_manager_access(user=caller(request), org_id=org_id)
        data = valid_input(AutoTopUpInput, request)
        row = update_auto_topup(org_id=access.org.id, actor=caller(request), **data)
        return Response(_render(access.org.id, row))
