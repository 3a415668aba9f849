"""The gateway's request parser, fed anything: it answers with a ChatRequest/ImageRequest or
one of our 400s, never another exception (which would be a 500) — issue 11 §5."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.gateway.metering import chat_request, image_request, parse_json_object
from orgbilling.errors import ApplicationError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# Bodies shaped like requests, so the parser gets past the first checks often.
chat_like = st.fixed_dictionaries(
    {
        "model": json_values | st.just("gpt-x"),
        "messages": json_values | st.just([{"role": "user", "content": "hi"}]),
    },
    optional={
        "max_tokens": json_values | st.integers(),
        "max_completion_tokens": json_values,
        "n": json_values | st.integers(),
        "stream": json_values | st.booleans(),
        "stream_options": json_values,
        "service_tier": json_values,
        "modalities": json_values,
        "temperature": json_values,
    },
)


def _parse(raw: bytes, parse) -> None:
    try:
        parse(parse_json_object(raw))
    except ApplicationError as refusal:
        assert refusal.status_code == 400, refusal


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, chat_like).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200))
def test_the_chat_parser_answers_or_refuses_with_400(raw):
    _parse(raw, chat_request)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {"model": json_values | st.just("img-x"), "prompt": json_values | st.text(max_size=20)},
        optional={"n": json_values, "size": json_values, "quality": json_values, "style": json_values},
    ).map(lambda v: json.dumps(v).encode())
)
def test_the_image_parser_answers_or_refuses_with_400(raw):
    _parse(raw, image_request)
