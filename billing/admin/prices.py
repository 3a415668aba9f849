"""Admin of model prices: the one place prices are edited."""

from django.contrib import admin

from billing.models import ModelPrice


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices are edited here; a change applies to calls priced after it (each charge stores
    the price it used)."""

    list_display = (
        "model",
        "input_credits_per_million",
        "output_credits_per_million",
        "image_credits",
        "max_output_tokens",
        "is_active",
        "updated_at",
    )
    list_filter = ("is_active",)
    search_fields = ("model",)
    list_editable = ("is_active",)
