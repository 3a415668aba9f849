"""What a gateway call is charged for: the upstream's reported usage or, when it never came,
the fallback (``fallback_usage``). Pure arithmetic, shared by the gateway's views and stream
relay and by the services that charge a call whose process died
(``billing.services.gateway_calls.open_calls``).

What the totals include (README, "Exact cost: what each token is charged"): ``input_tokens`` is
the upstream's ``prompt_tokens``, *all* of the prompt — the cache reads
(``prompt_tokens_details.cached_tokens``), the cache writes (``cache_creation_input_tokens``)
and the audio (``prompt_tokens_details.audio_tokens``) are parts of it, as OpenAI and LiteLLM
count them. ``output_tokens`` is ``completion_tokens``, all of the output — reasoning
(``completion_tokens_details.reasoning_tokens``) and audio (``…audio_tokens``) are parts of it.
Each part is priced at its own rate and the rest of the total at the plain rate, so no token is
charged twice. Parts that add up to more than their total (a provider counting them outside it)
raise the total to their sum: a token is never charged at less than one price.
"""

from dataclasses import dataclass

from billing.ledger.charges import MAX_TOKENS, TOKEN_DETAILS

# The breakdown columns of an attribution row, in the order an open record lists them.
DETAIL_FIELDS = TOKEN_DETAILS


@dataclass(frozen=True)
class Usage:
    input_tokens: int  # all of the prompt: the parts below included
    output_tokens: int  # all of the output: the parts below included
    # "upstream": reported by the provider; "estimated": counted by the gateway from the text;
    # "reasoning_bound": a reasoning model's output charged at the bound its hold was sized for.
    source: str
    cached_tokens: int = 0  # of input_tokens: read from the provider's prompt cache
    cache_write_tokens: int = 0  # of input_tokens: written to the prompt cache
    audio_input_tokens: int = 0  # of input_tokens: audio
    reasoning_tokens: int = 0  # of output_tokens: hidden reasoning
    audio_output_tokens: int = 0  # of output_tokens: audio

    def details(self) -> dict[str, int]:
        """The breakdown, as the attribution row's columns store it."""
        return {name: getattr(self, name) for name in DETAIL_FIELDS}


def consistent_usage(
    *,
    input_tokens: int,
    output_tokens: int,
    source: str,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    audio_input_tokens: int = 0,
    reasoning_tokens: int = 0,
    audio_output_tokens: int = 0,
) -> Usage:
    """A ``Usage`` whose totals hold their parts (raised to the parts' sum when they do not),
    every count capped at ``MAX_TOKENS``."""
    input_parts = cached_tokens + cache_write_tokens + audio_input_tokens
    output_parts = reasoning_tokens + audio_output_tokens
    counts = {
        "cached_tokens": cached_tokens,
        "cache_write_tokens": cache_write_tokens,
        "audio_input_tokens": audio_input_tokens,
        "reasoning_tokens": reasoning_tokens,
        "audio_output_tokens": audio_output_tokens,
    }
    input_total, output_total = max(input_tokens, input_parts), max(output_tokens, output_parts)
    if input_total > MAX_TOKENS or output_total > MAX_TOKENS:
        # Beyond what a row holds: charged as plain tokens at the cap (the hold bounds the cost).
        return Usage(min(input_total, MAX_TOKENS), min(output_total, MAX_TOKENS), source)
    return Usage(input_total, output_total, source, **counts)


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
    partial usage the upstream reported (per-chunk usage) is a floor for both; its prompt
    breakdown (final once reported) is kept, its output is charged at the plain output price."""
    if reasoning:
        output, source = max(output_bound, text_output_tokens), "reasoning_bound"
    else:
        output, source = text_output_tokens, "estimated"
    if reported is None:
        return Usage(min(estimated_input_tokens, MAX_TOKENS), min(output, MAX_TOKENS), source)
    return consistent_usage(
        input_tokens=reported.input_tokens,
        output_tokens=max(output, reported.output_tokens),
        source=source,
        cached_tokens=reported.cached_tokens,
        cache_write_tokens=reported.cache_write_tokens,
        audio_input_tokens=reported.audio_input_tokens,
    )
