"""billing.clients.lago.lago_time: the one reading of Lago's timestamps."""

from datetime import UTC, datetime

import pytest

from billing.clients.lago import lago_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),  # no offset: UTC, aware
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("", None),
        (None, None),
        ("not a time", None),
    ],
)
def test_lago_times_are_aware_and_an_offsetless_one_is_utc(text, expected):
    parsed = lago_time(text)

    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None
