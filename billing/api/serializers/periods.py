"""A recurring allocation's period settings as requests give them (``POST .../allocate`` and
``PATCH .../allocations/{user_id}``): fields shared by both inputs."""

from typing import Any

from rest_framework import serializers

from billing.api.serializers.fields import CreditsOrZeroIn
from billing.models import Period, PeriodMode
from billing.services import KEEP, PeriodChange

PERIOD_FIELDS = ("period", "period_mode", "period_amount_credits", "rollover_cap_credits")


class StrictChoiceField(serializers.ChoiceField):
    """One of the choices as a JSON string (DRF would also take ``1`` for ``"1"``)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class PeriodSettingsInput(serializers.Serializer):
    """Omit a field to keep it; ``"period": null`` stops the recurrence. ``validate`` folds the
    four into ``period_change`` (a ``PeriodChange``)."""

    period = StrictChoiceField(
        choices=Period.values,
        required=False,
        allow_null=True,
        help_text=(
            "Make the allocation recurring: each UTC day, ISO week (Monday) or calendar month starts "
            "over (see period_mode); null stops it; omit to keep it."
        ),
    )
    period_mode = StrictChoiceField(
        choices=PeriodMode.values,
        required=False,
        help_text=(
            "`reset` (default): unspent credits go back to the pool (or department budget) and the "
            "period amount is granted afresh. `refill`: topped back up to the amount, unspent credits "
            "carried over up to rollover_cap_credits."
        ),
    )
    period_amount_credits = CreditsOrZeroIn(
        required=False,
        help_text=(
            "What each period grants. Default when recurrence is turned on: the credits of an "
            "allocate request, or the new total minus what is used on an adjust."
        ),
    )
    rollover_cap_credits = CreditsOrZeroIn(
        required=False,
        allow_null=True,
        help_text="refill only: the most unspent credits carried beyond the amount (null/absent: none).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        given = {name: attrs.pop(name) for name in PERIOD_FIELDS if name in attrs}
        if given.get("period", KEEP) is None:
            others = [name for name in PERIOD_FIELDS[1:] if given.get(name) is not None]
            if others:
                raise serializers.ValidationError({name: "Needs a period." for name in others})
        if given.get("rollover_cap_credits") is not None and given.get("period_mode") == PeriodMode.RESET:
            raise serializers.ValidationError({"rollover_cap_credits": "Only a refill carries credits over."})
        attrs["period_change"] = PeriodChange(
            period=given.get("period", KEEP),
            mode=given.get("period_mode", KEEP),
            amount=given.get("period_amount_credits", KEEP),
            rollover_cap=given.get("rollover_cap_credits", KEEP),
        )
        return attrs
