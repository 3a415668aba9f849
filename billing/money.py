"""Credit amounts: moved to ``orgbilling.money`` (both apps and the shared API fields use
them); re-exported here so billing code keeps one import path."""

from orgbilling.money import (
    CREDIT_DECIMALS,
    CREDIT_QUANTUM,
    MAX_CREDITS,
    MAX_MILLICREDITS,
    MAX_USD,
    MILLICREDITS_PER_CREDIT,
    USD_QUANTUM,
    credits_to_millicredits,
    millicredits_to_credits,
    parse_usd,
    validate_millicredits,
)

__all__ = [
    "CREDIT_DECIMALS",
    "CREDIT_QUANTUM",
    "MAX_CREDITS",
    "MAX_MILLICREDITS",
    "MAX_USD",
    "MILLICREDITS_PER_CREDIT",
    "USD_QUANTUM",
    "credits_to_millicredits",
    "millicredits_to_credits",
    "parse_usd",
    "validate_millicredits",
]
