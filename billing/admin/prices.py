"""Admin of model prices: the one place prices are edited."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.models import ModelPrice
from billing.services.model_prices import edit_model_price


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices are edited here; a change applies to calls priced after it (each charge stores
    the price it used). Editing a price marks the row overridden: ``sync_model_prices`` leaves
    it alone until the flag is cleared here."""

    list_display = (
        "model",
        "input_credits_per_million",
        "output_credits_per_million",
        "image_credits",
        "max_output_tokens",
        "is_active",
        "price_overridden",
        "updated_at",
    )
    list_filter = ("is_active", "price_overridden")
    readonly_fields = ("price_source", "updated_at")
    search_fields = ("model",)
    list_editable = ("is_active",)

    def save_model(self, request: HttpRequest, obj: ModelPrice, form: Any, change: bool) -> None:
        changed = (
            form.changed_data if change else ["input_credits_per_million"]
        )  # a new row is an admin's price
        edit_model_price(price=obj, changed=changed, actor=request.user)  # type: ignore[arg-type]
