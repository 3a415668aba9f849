"""The token breakdown (cache reads and writes, reasoning, audio) of settled calls in the usage
analytics: ``GET /credits/{org_id}/usage``, the by-user/by-model series and their CSV export,
alike whether a day is read from the ledger or from its sealed rollup."""

import csv
import io
import uuid
from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from billing.services import reserve_credits, settle_reservation
from billing.services.rollups import rollup_usage
from tests.billing.test_selectors import frozen_now
from tests.helpers import mc

pytestmark = pytest.mark.django_db

DETAILS = {
    "cached_tokens": 600,
    "cache_write_tokens": 100,
    "audio_input_tokens": 0,
    "reasoning_tokens": 40,
    "audio_output_tokens": 0,
}
MARCH = {"start": "2025-03-01", "end": "2025-03-31"}


def settled_call(team, *, at: datetime, details: dict[str, int] = DETAILS) -> None:
    with frozen_now(at):
        hold = reserve_credits(
            user=team.member, org_id=team.org.id, amount=mc(1), request_id=f"r-{uuid.uuid4()}"
        )
        settle_reservation(
            reservation_id=hold.reservation_id,
            actual_amount=mc("0.5"),
            service_name="gpt-4o",
            input_tokens=1000,
            output_tokens=60,
            token_details=details,
        )


def test_the_usage_summary_shows_the_token_breakdown(api_client, team):
    settled_call(team, at=datetime(2025, 3, 3, 9, tzinfo=UTC))
    settled_call(team, at=datetime(2025, 3, 4, 9, tzinfo=UTC))
    api_client.force_login(team.admin)

    body = api_client.get(reverse("org-billing-credits-usage", args=[team.org.id]), MARCH).json()

    assert (body["total_input_tokens"], body["total_cached_tokens"], body["total_cache_write_tokens"]) == (
        2000, 1200, 200,
    )  # fmt: skip
    assert (body["total_output_tokens"], body["total_reasoning_tokens"]) == (120, 80)
    assert body["by_model"][0]["cached_tokens"] == 1200
    assert body["series"][0]["reasoning_tokens"] == 40


def test_the_csv_export_has_a_column_per_part(api_client, team):
    settled_call(team, at=datetime(2025, 3, 3, 9, tzinfo=UTC))
    api_client.force_login(team.admin)

    response = api_client.get(
        reverse("org-billing-usage-by-model", args=[team.org.id]), {**MARCH, "format": "csv"}
    )

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["period_start", "model", "requests", "input_tokens", "output_tokens", "cached_tokens",
         "cache_write_tokens", "audio_input_tokens", "reasoning_tokens", "audio_output_tokens",
         "credits_used"],
        ["2025-03-03", "gpt-4o", "1", "1000", "60", "600", "100", "0", "40", "0", "0.500"],
    ]  # fmt: skip


def test_a_sealed_day_read_from_the_rollup_shows_the_same_breakdown(api_client, team):
    settled_call(team, at=datetime(2025, 3, 3, 9, tzinfo=UTC))
    api_client.force_login(team.admin)
    url = reverse("org-billing-usage-by-user", args=[team.org.id])
    from_ledger = api_client.get(url, MARCH).json()["results"]

    rollup_usage(first_day=date(2025, 3, 1), last_day=date(2025, 3, 30), now=datetime(2025, 4, 2, tzinfo=UTC))
    from_rollup = api_client.get(url, MARCH).json()["results"]

    assert from_rollup == from_ledger
    assert from_rollup[0]["cached_tokens"] == 600
