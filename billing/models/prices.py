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
    image_credits = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        default=0,
        help_text="credits per generated image (default size/quality)",
    )
    image_prices = models.JSONField(
        default=dict,
        blank=True,
        help_text='credits per image by "size/quality", e.g. {"1024x1024/hd": 8.0}; else image_credits',
    )
    max_output_tokens = models.PositiveIntegerField(
        default=4096, help_text="output cap used to price the worst case when a call sets no max_tokens"
    )
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "model_prices"
        ordering = ["model"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(input_credits_per_million__gte=0)
                & Q(output_credits_per_million__gte=0)
                & Q(image_credits__gte=0),
                name="model_prices_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return self.model
