"""The org page's usage for a chosen date range: charts by day, member and model and the top
consumers, for the range the admin chose; a range the usage API refuses is refused in its words."""

import json

import pytest
from django.test import Client
from django.utils import timezone

from billing.services import deduct_credits
from tests.helpers import mc

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(acme):
    """The portal's "acme", with 7 credits spent by mia."""
    org, admin, member = acme
    deduct_credits(user=member, org_id=org.id, amount=mc(7), request_id="r1", service_name="gpt-x")
    return org, admin, member


def _chart(body: str, name: str) -> dict:
    start = body.index(f'<script id="{name}" type="application/json">') + len(
        f'<script id="{name}" type="application/json">'
    )
    return json.loads(body[start : body.index("</script>", start)])


def test_todays_range_charts_usage_by_member_model_and_day(client: Client, acme) -> None:
    client.force_login(acme[1])
    today = timezone.localdate().isoformat()

    response = client.get("/portal/orgs/acme/", {"start": today, "end": today})

    assert response.status_code == 200
    body = response.content.decode()
    assert _chart(body, "range-member-data")["labels"] == ["mia"]
    assert _chart(body, "range-model-data")["labels"] == ["gpt-x"]
    assert [float(v) for v in _chart(body, "range-member-data")["series"][0]["data"]] == [7]
    assert sum(float(v) for v in _chart(body, "range-day-data")["series"][0]["data"]) == 7
    table = body[body.index('id="top-consumers"') :]
    assert "mia" in table[: table.index("</table>")]


def test_a_range_without_usage_shows_none(client: Client, acme) -> None:
    client.force_login(acme[1])

    body = client.get("/portal/orgs/acme/", {"start": "2020-01-01", "end": "2020-01-31"}).content.decode()

    assert _chart(body, "range-member-data")["labels"] == []
    assert len(_chart(body, "range-day-data")["labels"]) >= 31
    table = body[body.index('id="top-consumers"') :]
    assert "No usage." in table[: table.index("</table>")]


def test_a_range_beyond_the_span_cap_is_refused_in_the_usage_api_words(
    client: Client, acme, settings
) -> None:
    client.force_login(acme[1])
    settings.USAGE_MAX_SPAN_DAYS = 10

    response = client.get("/portal/orgs/acme/", {"start": "2024-01-01", "end": "2024-03-01"})
    api = client.get("/api/v1/org-billing/credits/acme/usage", {"start": "2024-01-01", "end": "2024-03-01"})

    assert response.status_code == api.status_code == 400
    message = api.json()["error"]["details"]["fields"]["start"][0]
    assert f'<p class="field-error" id="range-start-error">{message}</p>' in response.content.decode()


def test_a_start_after_the_end_and_a_bad_date_are_refused_on_their_fields(client: Client, acme) -> None:
    client.force_login(acme[1])

    backwards = client.get(
        "/portal/orgs/acme/", {"start": "2024-03-01", "end": "2024-01-01"}
    ).content.decode()
    garbage = client.get("/portal/orgs/acme/", {"start": "2024-01-01", "end": "soon"})

    assert "`start` must not be after `end`." in backwards
    assert garbage.status_code == 400
    assert 'id="range-end-error"' in garbage.content.decode()
