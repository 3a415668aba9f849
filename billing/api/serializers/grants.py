"""An organization's credit grants as the API shows them (org admins), then the endpoint's
OpenAPI schema."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from billing.api.serializers.fields import ORG_ID_PARAM, Credits
from billing.models import CreditGrant
from orgbilling.api.schema import error_responses, example


class CreditGrantSerializer(serializers.Serializer):
    grant_id = serializers.IntegerField()
    credits = Credits(help_text="Credits the grant put into the pool")
    remaining_credits = Credits(
        help_text=(
            "Unspent credits of the grant still in the pool: the pool's usage burns grants by "
            "priority (lower first), then soonest expiry, then oldest. Of an expired grant: what "
            "members still hold of it (spent first)."
        )
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    priority = serializers.IntegerField(help_text="Burn-down order: a lower number is spent first")
    # A field named like DRF's ``Field.source`` attribute: the API's name wins.
    source = serializers.ChoiceField(choices=CreditGrant.Source.choices)  # type: ignore[assignment]
    created_at = serializers.DateTimeField()
    expired_at = serializers.DateTimeField(allow_null=True, help_text="When the expiry took effect")
    forfeited_credits = Credits(help_text="Credits that left the pool when the grant expired")
    retained_credits = Credits(
        help_text="At the grant's last expiry step: unspent credits that stayed because members held them"
    )


GRANT_EXAMPLE = {
    "grant_id": 12,
    "credits": 5000.0,
    "remaining_credits": 1200.5,
    "expires_at": "2026-03-31T00:00:00Z",
    "priority": 10,
    "source": "promotion",
    "created_at": "2026-01-01T00:00:00Z",
    "expired_at": None,
    "forfeited_credits": 0.0,
    "retained_credits": 0.0,
}

GRANT_LIST_SCHEMA = extend_schema(
    operation_id="org_billing_credit_grants_list",
    summary="The organization's credit grants with what each has left (org admins), newest first",
    description=(
        "Every credit in the pool entered as a grant (a purchase, an auto top-up, a manual grant, "
        "a promotion, a subscription's initial credits, or `legacy`: what the pool held before "
        "grants). When a grant expires, its unspent credits leave the pool as far as they are "
        "unallocated (`forfeited_credits`); what members hold stays with them. Members get 403."
    ),
    tags=["credits"],
    parameters=[ORG_ID_PARAM],
    responses={200: CreditGrantSerializer(many=True), **error_responses(400, 401, 403, 404, 429)},
    examples=[example("one page", {"count": 1, "next": None, "previous": None, "results": [GRANT_EXAMPLE]})],
)
