"""What a gateway call is charged for: the upstream's reported usage or, when it never came,
the fallback (``fallback_usage``). Pure arithmetic, shared by the gateway's views and stream
relay and by the services that charge a call whose process died
(``billing.services.gateway_calls.open_calls``).
"""

from dataclasses import dataclass

from billing.ledger.charges import MAX_TOKENS


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    # "upstream": reported by the provider; "estimated": counted by the gateway from the text;
    # "reasoning_bound": a reasoning model's output charged at the bound its hold was sized for.
    source: str


def fallback_usage(
    *,
    reported: Usage | None,
    estimated_input_tokens: int,
    text_output_tokens: int,
    output_bound: int,
    reasoning: bool,
) -> Usage:
    """What a call whose final usage never came is charged (docs/decisions.md, "A call whose
    usage never came"). A reasoning model's output is charged at ``output_bound`` (what its hold
    was sized for): its hidden tokens are invisible in the text and may be most of the output.
    Other output is the text counted (``billing.gateway.metering.weighted_characters``). A
    partial usage the upstream reported (per-chunk usage) is a floor for both."""
    if reasoning:
        output, source = max(output_bound, text_output_tokens), "reasoning_bound"
    else:
        output, source = text_output_tokens, "estimated"
    input_tokens = estimated_input_tokens
    if reported is not None:
        output = max(output, reported.output_tokens)
        input_tokens = reported.input_tokens
    return Usage(min(input_tokens, MAX_TOKENS), min(output, MAX_TOKENS), source)
