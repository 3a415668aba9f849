"""What each model costs, in credits (edited in the admin)."""

from typing import ClassVar

from django.db import models
from django.db.models import Q


class ModelPrice(models.Model):
    """What a model costs, in credits (1 credit = $0.01). Edited in the admin; a change applies
    to calls priced after it, and every charge stores the price it used."""

    model = models.CharField(max_length=200, unique=True, help_text="the name clients send, e.g. gpt-4o-mini")
    input_credits_per_million = models.DecimalField(
        max_digits=12, decimal_places=3, help_text="credits per 1M input (prompt) tokens"
    )
    output_credits_per_million = models.DecimalField(
        max_digits=12, decimal_places=3, help_text="credits per 1M output (completion) tokens"
    )
    cache_read_credits_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="credits per 1M prompt tokens read from the provider's cache; empty: the input price",
    )
    cache_write_credits_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="credits per 1M prompt tokens written to the provider's cache; empty: the input price",
    )
    audio_input_credits_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="credits per 1M audio input tokens; empty: the input price",
    )
    reasoning_credits_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="credits per 1M reasoning (hidden output) tokens; empty: the output price",
    )
    audio_output_credits_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="credits per 1M audio output tokens; empty: the output price",
    )
    image_credits = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        default=0,
        help_text="credits per generated image (default size/quality)",
    )
    image_prices = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'credits per image by "size/quality", e.g. {"1024x1024/hd": 8.0, "1024x1024/standard": 4.0}; '
            "a request naming a size or quality not listed here is refused; naming neither: image_credits"
        ),
    )
    max_output_tokens = models.PositiveIntegerField(
        default=4096, help_text="output cap used to price the worst case when a call sets no max_tokens"
    )
    is_active = models.BooleanField(default=True)
    price_overridden = models.BooleanField(
        default=False,
        help_text="set when staff edit the prices in the admin: sync_model_prices then leaves the row alone",
    )
    price_source = models.CharField(
        max_length=200,
        blank=True,
        help_text="where the prices came from, e.g. genai-prices 0.2.5 openai/gpt-4o",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "model_prices"
        ordering = ["model"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(input_credits_per_million__gte=0)
                & Q(output_credits_per_million__gte=0)
                & Q(image_credits__gte=0)
                & (Q(cache_read_credits_per_million__isnull=True) | Q(cache_read_credits_per_million__gte=0))
                & (
                    Q(cache_write_credits_per_million__isnull=True)
                    | Q(cache_write_credits_per_million__gte=0)
                )
                & (
                    Q(audio_input_credits_per_million__isnull=True)
                    | Q(audio_input_credits_per_million__gte=0)
                )
                & (Q(reasoning_credits_per_million__isnull=True) | Q(reasoning_credits_per_million__gte=0))
                & (
                    Q(audio_output_credits_per_million__isnull=True)
                    | Q(audio_output_credits_per_million__gte=0)
                ),
                name="model_prices_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return self.model
