"""Reads of the gateway: the model catalogue with prices."""

import time
from typing import Any

from billing.models import ModelPrice
from billing.pricing import PART_PRICES


def model_list() -> dict[str, Any]:
    """Active models in OpenAI's list shape, each with its price in credits (1 credit = $0.01):
    per million input and output tokens, per image (and per image by "size/quality"), and the
    output cap priced when a call sets no ``max_tokens``."""
    rows = ModelPrice.objects.filter(is_active=True).order_by("model")
    return {
        "object": "list",
        "data": [
            {
                "id": row.model,
                "object": "model",
                "created": int(row.updated_at.timestamp()) if row.updated_at else int(time.time()),
                "owned_by": "orgbilling",
                "input_credits_per_million": row.input_credits_per_million,
                "output_credits_per_million": row.output_credits_per_million,
                "image_credits": row.image_credits,
                "image_prices": row.image_prices or {},
                "max_output_tokens": row.max_output_tokens,
                # Parts of the usage at their own price; null: the plain input or output price.
                **{name: getattr(row, name) for name in PART_PRICES},
            }
            for row in rows
        ],
    }
