"""What a call may cost and what it did cost: the request's shape, token estimates, and the
reading of usage from a response or a streamed (SSE) answer.

Estimates only size the hold and stand in when the upstream reports no usage (a stream cut
short). They err high: ``ceil(ASCII characters / 4)`` plus one token per other character (CJK
text runs at a token or more per character), a per-message overhead, and a fixed allowance per
image in a prompt. A reasoning model's hidden tokens cannot be counted from its text: a stream of
one that ends without its usage is charged the output bound its hold was sized for. What such a
call is charged (``Usage``, ``fallback_usage``) is ``billing/call_usage.py``, which the services
that charge a lost call share.
"""

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from billing.call_usage import Usage, consistent_usage, fallback_usage
from billing.errors import MalformedRequest, UnsupportedParameter
from billing.ledger.charges import MAX_TOKENS
from orgbilling.errors import ValidationFailed

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4  # role and separators, as OpenAI counts them
TOKENS_PER_REPLY = 3  # the assistant's reply is primed with these
TOKENS_PER_PROMPT_IMAGE = 1500  # above a high-detail 2048px image's cost on current models
MAX_CHOICES = 128
MAX_IMAGES = 10
IMAGE_PART_TYPES = {"image_url", "input_image", "image"}
AUDIO_PART_TYPES = {"input_audio"}

# What is forwarded upstream: the parameters our prices cover. Anything else could be billed by
# the provider at a rate we do not charge (service_tier "priority", audio output, web search,
# predicted outputs), so it is refused rather than passed on at the plain text price.
CHAT_PARAMETERS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "stream", "stream_options", "n",
    "temperature", "top_p", "stop", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "top_logprobs", "user", "seed", "tools", "tool_choice", "parallel_tool_calls",
    "response_format", "reasoning_effort", "functions", "function_call",
})  # fmt: skip
# Parameters allowed only with the values that cost nothing extra.
CHAT_PLAIN_VALUES: dict[str, tuple[Any, ...]] = {
    "service_tier": ("auto", "default"),
    "modalities": (["text"],),
}
IMAGE_PARAMETERS = frozenset({"model", "prompt", "n", "size", "quality", "response_format", "style", "user"})


def _only_priced(body: dict[str, Any], allowed: frozenset[str], plain: dict[str, tuple[Any, ...]]) -> None:
    unsupported = sorted(
        name
        for name, value in body.items()
        if name not in allowed and not (name in plain and value in plain[name])
    )
    if unsupported:
        raise UnsupportedParameter(
            f"Not supported through this gateway (not priced): {', '.join(unsupported)}.",
            details={"parameters": unsupported},
        )


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"null", parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise MalformedRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise MalformedRequest()
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def _whole(body: dict[str, Any], name: str, *, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailed(
            f"{name} must be a whole number from {low} to {high}.", details={"fields": {name: value}}
        )
    return value


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 200:
        raise ValidationFailed("model must be a model name.", details={"fields": {"model": model}})
    return model


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion as the gateway prices it."""

    body: dict[str, Any]
    model: str
    stream: bool
    max_output_tokens: int | None  # what the caller set (max_tokens / max_completion_tokens)
    choices: int
    estimated_input_tokens: int
    wants_usage: bool  # a streaming caller asked for the usage chunk itself
    reasoning: bool = False  # the caller asked the model to reason (reasoning_effort, not "none")
    audio_input: bool = False  # a message has an audio part (priced only where the model has an audio price)

    def upstream_body(self, *, output_cap: int | None) -> dict[str, Any]:
        """The body sent upstream: the caller's, with the priced output cap when they set
        none (so the hold is a true worst case) and, when streaming, a final usage chunk."""
        body = dict(self.body)
        if output_cap is not None and self.max_output_tokens is None:
            body["max_tokens"] = output_cap
        if self.stream:
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return body


def chat_request(body: dict[str, Any]) -> ChatRequest:
    model = _model(body)
    _only_priced(body, CHAT_PARAMETERS, CHAT_PLAIN_VALUES)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ValidationFailed("messages must be a non-empty list of message objects.")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise ValidationFailed("stream must be true or false.", details={"fields": {"stream": stream}})
    caps = [
        cap
        for cap in (
            _whole(body, "max_tokens", low=1, high=MAX_TOKENS),
            _whole(body, "max_completion_tokens", low=1, high=MAX_TOKENS),
        )
        if cap is not None
    ]
    options = body.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    return ChatRequest(
        body=body,
        model=model,
        stream=stream,
        max_output_tokens=max(caps) if caps else None,
        choices=_whole(body, "n", low=1, high=MAX_CHOICES) or 1,
        estimated_input_tokens=estimate_prompt_tokens(body),
        wants_usage=wants_usage,
        reasoning=body.get("reasoning_effort") not in (None, "none"),
        audio_input=_has_audio(messages),
    )


def _has_audio(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(part, dict) and part.get("type") in AUDIO_PART_TYPES
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
    )


@dataclass(frozen=True)
class ImageRequest:
    body: dict[str, Any]
    model: str
    count: int
    size: str | None
    quality: str | None


def image_request(body: dict[str, Any]) -> ImageRequest:
    model = _model(body)
    _only_priced(body, IMAGE_PARAMETERS, {})
    if not isinstance(body.get("prompt"), str):
        raise ValidationFailed("prompt must be a string.", details={"fields": {"prompt": body.get("prompt")}})
    size, quality = body.get("size"), body.get("quality")
    for name, value in (("size", size), ("quality", quality)):
        if value is not None and (not isinstance(value, str) or len(value) > 32):
            raise ValidationFailed(f"{name} must be a string.", details={"fields": {name: value}})
    count = _whole(body, "n", low=1, high=MAX_IMAGES) or 1
    return ImageRequest(body=body, model=model, count=count, size=size, quality=quality)


def weighted_characters(text: str) -> int:
    """``text``'s length with every non-ASCII character counted ``CHARS_PER_TOKEN`` times, so
    that ``ceil(weighted / CHARS_PER_TOKEN)`` is ``ceil(ASCII characters / 4)`` plus one token
    per other character (a CJK character is one token or more in current tokenizers)."""
    if text.isascii():
        return len(text)
    other = len(text) - len(text.encode("ascii", "ignore"))
    return len(text) + (CHARS_PER_TOKEN - 1) * other


def _characters(value: Any) -> int:
    return weighted_characters(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def is_reasoning_model(model: str, patterns: list[str]) -> bool:
    """Whether ``model`` matches one of ``patterns`` (``LLM_REASONING_MODELS``, shell-style)."""
    name = model.lower()
    return any(fnmatchcase(name, pattern.lower()) for pattern in patterns)


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """A generous estimate of the prompt's tokens: messages, tool definitions, images."""
    characters = 0
    images = 0
    messages = body.get("messages") or []
    for message in messages:
        for key, value in message.items():
            if key == "content" and isinstance(value, list):
                for part in value:
                    if isinstance(part, dict) and part.get("type") in IMAGE_PART_TYPES:
                        images += 1
                    elif isinstance(part, dict) and isinstance(part.get("text"), str):
                        characters += weighted_characters(part["text"])
                    else:
                        characters += _characters(part)
            elif value is not None:
                characters += _characters(value)
    for key in ("tools", "functions", "response_format", "tool_choice"):
        if body.get(key) is not None:
            characters += _characters(body[key])
    return (
        math.ceil(characters / CHARS_PER_TOKEN)
        + TOKENS_PER_MESSAGE * len(messages)
        + TOKENS_PER_REPLY
        + TOKENS_PER_PROMPT_IMAGE * images
    )


def estimate_output_tokens(*, characters: int, pieces: int) -> int:
    """Tokens of streamed text (``characters`` as ``weighted_characters`` counts them): at least
    one per chunk that carried text (providers stream a token or more per chunk), and at least
    ``characters / 4``."""
    return max(pieces, math.ceil(characters / CHARS_PER_TOKEN))


def _count(value: Any) -> int | None:
    """A token count: a whole number ≥ 0 (None when absent or not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _detail(usage: dict[str, Any], group: str, name: str) -> int:
    details = usage.get(group)
    return (_count(details.get(name)) or 0) if isinstance(details, dict) else 0


def reported_usage(payload: Any) -> Usage | None:
    """``usage`` of an OpenAI response or chunk, when it holds sane token counts, with its
    breakdown: cache reads (``prompt_tokens_details.cached_tokens``), cache writes
    (``cache_creation_input_tokens``, LiteLLM's name for Anthropic's), audio in and out, and
    reasoning (``completion_tokens_details.reasoning_tokens``). The parts are inside the totals
    (``billing.call_usage``)."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if completion is None and isinstance(prompt, int):
        completion = 0  # embeddings-style usage
    prompt, completion = _count(prompt), _count(completion)
    if prompt is None or completion is None:
        return None
    cache_write = _count(usage.get("cache_creation_input_tokens")) or _detail(
        usage, "prompt_tokens_details", "cache_creation_input_tokens"
    )
    return consistent_usage(
        input_tokens=prompt,
        output_tokens=completion,
        source="upstream",
        cached_tokens=_detail(usage, "prompt_tokens_details", "cached_tokens"),
        cache_write_tokens=cache_write,
        audio_input_tokens=_detail(usage, "prompt_tokens_details", "audio_tokens"),
        reasoning_tokens=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
        audio_output_tokens=_detail(usage, "completion_tokens_details", "audio_tokens"),
    )


def reported_reasoning(payload: Any) -> bool:
    """Whether a response or chunk shows the model reasoning: ``reasoning_tokens`` in its usage
    (``completion_tokens_details``), or reasoning text in a choice."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    reasoning_tokens = details.get("reasoning_tokens") if isinstance(details, dict) else None
    if isinstance(reasoning_tokens, int) and not isinstance(reasoning_tokens, bool) and reasoning_tokens > 0:
        return True
    choices = payload.get("choices") if isinstance(payload, dict) else None
    for choice in choices if isinstance(choices, list) else []:
        part = choice.get("delta") or choice.get("message") if isinstance(choice, dict) else None
        if isinstance(part, dict) and any(part.get(key) for key in ("reasoning_content", "reasoning")):
            return True
    return False


def completion_text_size(payload: Any) -> tuple[int, int]:
    """(characters as ``weighted_characters`` counts them, pieces) of the text in a
    completion's choices (or a chunk's deltas)."""
    characters = pieces = 0
    choices = payload.get("choices") if isinstance(payload, dict) else None
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        part = choice.get("delta") if isinstance(choice.get("delta"), dict) else choice.get("message")
        if not isinstance(part, dict):
            continue
        texts = [part[key] for key in ("content", "reasoning_content", "reasoning", "refusal")
                 if isinstance(part.get(key), str)]  # fmt: skip
        for call in part.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                texts.extend(v for v in function.values() if isinstance(v, str))
        size = sum(weighted_characters(text) for text in texts)
        if size:
            characters += size
            pieces += 1
    return characters, pieces


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Complete SSE events (each ending in a blank line) out of arbitrarily cut bytes."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk.replace(b"\r\n", b"\n")
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            event, buffer = buffer[: end + 2], buffer[end + 2 :]
            yield event
    if buffer.strip():
        yield buffer if buffer.endswith(b"\n\n") else buffer.rstrip(b"\n") + b"\n\n"


@dataclass
class StreamMeter:
    """Watches the events of a streamed completion: keeps the usage chunk, counts the text,
    holds back ``[DONE]`` (the gateway sends it after settling) and, when the caller did not
    ask for usage, drops the usage-only chunk the gateway asked for on its behalf. A data event
    that is not a JSON object is malformed: it is counted and not relayed (a client's SDK would
    fail on it before seeing the gateway's error event)."""

    strip_usage: bool
    usage: Usage | None = None
    final_usage: bool = False  # ``usage`` came in a chunk without choices: the stream's last word
    reasoning: bool = False  # a chunk showed reasoning (reasoning tokens or reasoning text)
    characters: int = 0  # weighted_characters of the text
    pieces: int = 0
    saw_done: bool = False
    events: int = field(default=0)
    malformed: int = 0

    def feed(self, event: bytes) -> bytes | None:
        """The event to relay, or None to hold it back."""
        data_lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
        if not data_lines:
            return event
        data = b"\n".join(data_lines)
        if data.strip() == b"[DONE]":
            self.saw_done = True
            return None
        self.events += 1
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.malformed += 1
            return None
        usage = reported_usage(payload)
        if usage is not None:
            self.usage = usage
            self.final_usage = not payload.get("choices")
        if not self.reasoning and reported_reasoning(payload):
            self.reasoning = True
        characters, pieces = completion_text_size(payload)
        self.characters += characters
        self.pieces += pieces
        if self.strip_usage and usage is not None and not payload.get("choices"):
            return None
        return event

    @property
    def produced_output(self) -> bool:
        return self.pieces > 0

    def usage_or_estimate(
        self,
        *,
        estimated_input_tokens: int,
        output_bound: int = 0,
        reasoning_model: bool = False,
        complete: bool = True,
    ) -> Usage:
        """The upstream's usage when its last word came (a usage-only chunk, or any usage in a
        stream that ended normally); else ``fallback_usage``."""
        if self.usage is not None and (self.final_usage or complete):
            return self.usage
        return fallback_usage(
            reported=self.usage,
            estimated_input_tokens=estimated_input_tokens,
            text_output_tokens=estimate_output_tokens(characters=self.characters, pieces=self.pieces),
            output_bound=output_bound,
            reasoning=reasoning_model or self.reasoning,
        )
