"""The forms of the admin's credit actions (``billing.admin.actions``): amounts typed in
credits or USD, cleaned by ``billing.money`` — never through a float."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.models.grants import DEFAULT_GRANT_PRIORITY, MAX_GRANT_PRIORITY
from billing.money import credits_to_millicredits, parse_usd
from organizations.models import Organization, OrganizationMember, User
from orgbilling.errors import InvalidAmount


class CreditAmountFormField(forms.CharField):
    """Credits as typed in an admin form (``"5000"``, ``"12.5"``), cleaned to positive integer
    millicredits by ``billing.money`` — never through a float. (The API's JSON-number field is
    ``orgbilling.api.fields.CreditAmountField``; both parse with ``credits_to_millicredits``.)"""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget", forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "e.g. 5000"})
        )
        super().__init__(**kwargs)

    def clean(self, value: Any) -> int | None:
        text = super().clean(value)
        if text in self.empty_values:
            return None
        try:
            return credits_to_millicredits(text)
        except InvalidAmount as error:
            raise ValidationError(error.message, code=error.code) from error


class UsdAmountFormField(forms.CharField):
    """A non-negative USD amount with at most two decimals, cleaned to a ``Decimal``."""

    def clean(self, value: Any) -> Decimal | None:
        text = super().clean(value)
        if text in self.empty_values:
            return None
        try:
            return parse_usd(text)
        except InvalidAmount as error:
            raise ValidationError(error.message, code=error.code) from error


class AddCreditsForm(forms.Form):
    credits = CreditAmountFormField(help_text="Credits to add, at most 3 decimals (1 credit = $0.01).")
    purchase_amount = UsdAmountFormField(
        label="Purchase amount (USD)",
        required=False,
        help_text="What the organization paid. Leave empty to record a grant.",
    )
    description = forms.CharField(required=False, max_length=500)


class AllocateCreditsForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.none(), label="Member")
    credits = CreditAmountFormField(help_text="Credits to give from the pool's unallocated credits.")
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Optional expiry, YYYY-MM-DD HH:MM (UTC). Replaces the current expiry when given.",
    )

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["user"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = User.objects.filter(
            memberships__org=org, memberships__status=OrganizationMember.Status.ACTIVE
        ).order_by("username")

    def clean_expires_at(self) -> datetime | None:
        expires_at: datetime | None = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future.", code="expiry_in_past")
        return expires_at


class DepartmentBudgetForm(forms.Form):
    budget = CreditAmountFormField(
        help_text="The department's new budget in credits: more draws on the pool's available credits, "
        "less hands the difference back (never below what its allocations hold)."
    )


class GrantIndividualCreditsForm(forms.Form):
    credits = CreditAmountFormField(help_text="Credits to add to the user's own balance, at most 3 decimals.")
    reason = forms.CharField(max_length=500, help_text="Why: kept in the ledger entry and the audit log.")


class PromotionalCreditsForm(forms.Form):
    credits = CreditAmountFormField(help_text="Promotional credits to grant, at most 3 decimals.")
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Optional expiry, YYYY-MM-DD HH:MM (UTC): unspent credits leave the pool then.",
    )
    priority = forms.IntegerField(
        min_value=0,
        max_value=MAX_GRANT_PRIORITY,
        initial=DEFAULT_GRANT_PRIORITY,
        help_text="Burn-down order: a lower number is spent first.",
    )
    description = forms.CharField(required=False, max_length=500)

    def clean_expires_at(self) -> datetime | None:
        expires_at: datetime | None = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future.", code="expiry_in_past")
        return expires_at
