"""Usage statistics (``GET /credits/{org_id}/usage``) and usage analytics
(``GET /usage/{org_id}/by-user`` and ``/by-model``, JSON or CSV)."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from billing.api import reports
from organizations.services import add_member
from tests.billing.test_selectors import charge
from tests.factories import UserFactory
from tests.helpers import assert_error, snapshot_balances

pytestmark = pytest.mark.django_db

MARCH = {"start": "2025-03-01", "end": "2025-04-30"}
BREAKDOWN = [
    "cached_tokens",
    "cache_write_tokens",
    "audio_input_tokens",
    "reasoning_tokens",
    "audio_output_tokens",
]
NONE = ["0"] * len(BREAKDOWN)


def usage_url(org_id: str) -> str:
    return reverse("org-billing-credits-usage", args=[org_id])


def by_user_url(org_id: str) -> str:
    return reverse("org-billing-usage-by-user", args=[org_id])


def by_model_url(org_id: str) -> str:
    return reverse("org-billing-usage-by-model", args=[org_id])


@pytest.fixture
def team(team, make_funded_member):
    """The billing ``team`` with a second funded member: ``alice`` (its member) and ``bob``; another
    org with its own member, ``carol``."""
    team.alice = team.member
    _, team.bob, _ = make_funded_member(pool=0, allocation=100, org=team.org)
    team.other_org, team.carol, _ = make_funded_member(pool=100, allocation=50)
    return team


@pytest.fixture
def march_usage(team):
    """Usage on known days: the weeks of 3 and 10 March, and April."""
    charge(team.alice, team.org, "1.5", model="gpt-4o", at=datetime(2025, 3, 3, 9, tzinfo=UTC))
    charge(team.alice, team.org, 2, model="claude", at=datetime(2025, 3, 5, 9, tzinfo=UTC))
    charge(team.bob, team.org, "0.125", model="gpt-4o", at=datetime(2025, 3, 10, 9, tzinfo=UTC))
    charge(team.alice, team.org, 4, model="gpt-4o", at=datetime(2025, 4, 2, 9, tzinfo=UTC))
    charge(team.carol, team.other_org, 7, model="gpt-4o", at=datetime(2025, 3, 3, 9, tzinfo=UTC))
    return team


# --- GET /credits/{org_id}/usage -----------------------------------------------------------


def test_admin_gets_the_whole_orgs_usage_statistics(api_client, team):
    charge(team.alice, team.org, "1.5", model="gpt-4o", input_tokens=100, output_tokens=20)
    charge(team.bob, team.org, "0.25", model="claude", input_tokens=10, output_tokens=2)
    charge(team.carol, team.other_org, 9)
    api_client.force_login(team.admin)

    response = api_client.get(usage_url(team.org.id))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["total_credits_used"] == 1.75
    assert (body["total_requests"], body["total_input_tokens"], body["total_output_tokens"]) == (2, 110, 22)
    assert set(body["period"]) == {"start", "end"}
    assert [row["model"] for row in body["by_model"]] == ["gpt-4o", "claude"]
    assert [row["user_id"] for row in body["by_user"]] == [team.alice.username, team.bob.username]
    assert body["by_user"][0]["credits_used"] == 1.5
    assert body["series"][-1]["credits_used"] == 1.75


def test_usage_statistics_honour_period_user_and_model_filters(api_client, march_usage):
    api_client.force_login(march_usage.admin)

    march = api_client.get(usage_url(march_usage.org.id), {"start": "2025-03-01", "end": "2025-03-31"}).json()
    alice_gpt = api_client.get(
        usage_url(march_usage.org.id), {**MARCH, "user_id": march_usage.alice.username, "model": "gpt-4o"}
    ).json()
    weekly = api_client.get(usage_url(march_usage.org.id), {**MARCH, "granularity": "week"}).json()

    assert march["total_credits_used"] == 3.625
    assert march["period"] == {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z"}
    assert alice_gpt["total_credits_used"] == 5.5
    assert alice_gpt["user_id"] == march_usage.alice.username and alice_gpt["model"] == "gpt-4o"
    assert [(b["period_start"], b["credits_used"]) for b in weekly["series"]] == [
        ("2025-03-03", 3.5),
        ("2025-03-10", 0.125),
        ("2025-03-31", 4.0),
    ]


def test_a_member_sees_only_their_own_usage_even_when_asking_for_someone_else(api_client, march_usage):
    api_client.force_login(march_usage.bob)

    body = api_client.get(
        usage_url(march_usage.org.id), {**MARCH, "user_id": march_usage.alice.username}
    ).json()

    assert body["total_credits_used"] == 0.125
    assert body["user_id"] == march_usage.bob.username
    assert [row["user_id"] for row in body["by_user"]] == [march_usage.bob.username]


def test_a_system_admin_sees_any_orgs_usage(api_client, staff_user, march_usage):
    api_client.force_login(staff_user)
    body = api_client.get(usage_url(march_usage.org.id), MARCH).json()
    assert body["total_credits_used"] == 7.625


def test_usage_statistics_of_an_org_without_usage_are_zeros(api_client, team):
    api_client.force_login(team.admin)
    body = api_client.get(usage_url(team.org.id)).json()
    assert body["total_credits_used"] == 0
    assert body["by_model"] == [] and body["by_user"] == [] and body["series"] == []


# --- GET /usage/{org_id}/by-user and /by-model ---------------------------------------------


def test_usage_by_user_is_a_paginated_weekly_series(api_client, march_usage):
    api_client.force_login(march_usage.admin)

    body = api_client.get(by_user_url(march_usage.org.id), {**MARCH, "granularity": "week"}).json()

    assert body["count"] == 3
    assert body["granularity"] == "week"
    assert [(r["period_start"], r["user_id"], r["credits_used"], r["requests"]) for r in body["results"]] == [
        ("2025-03-03", march_usage.alice.username, 3.5, 2),
        ("2025-03-10", march_usage.bob.username, 0.125, 1),
        ("2025-03-31", march_usage.alice.username, 4.0, 1),
    ]


def test_usage_by_model_monthly_with_a_model_filter(api_client, march_usage):
    api_client.force_login(march_usage.admin)

    body = api_client.get(
        by_model_url(march_usage.org.id), {**MARCH, "granularity": "month", "model": "gpt-4o"}
    ).json()

    assert [(r["period_start"], r["model"], r["credits_used"]) for r in body["results"]] == [
        ("2025-03-01", "gpt-4o", 1.625),
        ("2025-04-01", "gpt-4o", 4.0),
    ]


def test_series_pages_have_next_links(api_client, march_usage):
    api_client.force_login(march_usage.admin)

    first = api_client.get(by_user_url(march_usage.org.id), {**MARCH, "page_size": 2}).json()
    second = api_client.get(first["next"]).json()

    assert first["count"] == 4 and len(first["results"]) == 2
    assert second["previous"] and second["next"] is None
    assert len(second["results"]) == 2


def test_a_member_sees_only_their_own_series(api_client, march_usage):
    api_client.force_login(march_usage.bob)

    by_user = api_client.get(
        by_user_url(march_usage.org.id), {**MARCH, "user_id": march_usage.alice.username}
    )
    by_model = api_client.get(by_model_url(march_usage.org.id), MARCH)

    assert {r["user_id"] for r in by_user.json()["results"]} == {march_usage.bob.username}
    assert [r["credits_used"] for r in by_model.json()["results"]] == [0.125]


def test_csv_export_by_accept_header(api_client, march_usage):
    api_client.force_login(march_usage.admin)

    response = api_client.get(by_user_url(march_usage.org.id), MARCH, HTTP_ACCEPT="text/csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="usage-by-user-{march_usage.org.id}-20250301-20250430.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["period_start", "user_id", "requests", "input_tokens", "output_tokens", *BREAKDOWN, "credits_used"],
        ["2025-03-03", march_usage.alice.username, "1", "10", "5", *NONE, "1.500"],
        ["2025-03-05", march_usage.alice.username, "1", "10", "5", *NONE, "2.000"],
        ["2025-03-10", march_usage.bob.username, "1", "10", "5", *NONE, "0.125"],
        ["2025-04-02", march_usage.alice.username, "1", "10", "5", *NONE, "4.000"],
    ]


def test_csv_export_by_format_parameter_is_not_paginated(api_client, march_usage):
    api_client.force_login(march_usage.admin)

    response = api_client.get(by_model_url(march_usage.org.id), {**MARCH, "format": "csv", "page_size": 1})

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:2] == ["period_start", "model"]
    assert len(rows) == 5


def test_csv_cells_that_look_like_formulas_are_neutralised(api_client, team):
    charge(team.alice, team.org, 1, model="=HYPERLINK(1)")
    api_client.force_login(team.admin)

    response = api_client.get(by_model_url(team.org.id), {"format": "csv"})

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][1] == "'=HYPERLINK(1)"


def test_an_empty_csv_export_still_has_its_header(api_client, team):
    api_client.force_login(team.admin)
    response = api_client.get(by_user_url(team.org.id), {"format": "csv"})
    assert response.content.decode().splitlines() == [
        f"period_start,user_id,requests,input_tokens,output_tokens,{','.join(BREAKDOWN)},credits_used"
    ]


def test_a_csv_export_beyond_the_row_limit_is_refused_as_json(api_client, march_usage, monkeypatch):
    monkeypatch.setattr(reports, "CSV_EXPORT_MAX_ROWS", 2)
    api_client.force_login(march_usage.admin)

    response = api_client.get(by_user_url(march_usage.org.id), MARCH, HTTP_ACCEPT="text/csv")

    assert response["Content-Type"].startswith("application/json")
    assert assert_error(response, 400, "validation_error")["details"] == {"max_rows": 2}


def test_errors_are_json_even_when_csv_was_asked_for(api_client, team):
    api_client.force_login(UserFactory())

    not_found = api_client.get(by_user_url(team.org.id), HTTP_ACCEPT="text/csv")
    api_client.force_login(team.admin)
    invalid = api_client.get(by_user_url(team.org.id), {"format": "csv", "granularity": "hour"})

    assert_error(not_found, 404, "organization_not_found")
    assert_error(invalid, 400, "validation_error")
    assert invalid["Content-Type"].startswith("application/json")


# --- access and bad input (every usage endpoint) -------------------------------------------

USAGE_URLS = [
    pytest.param(usage_url, id="usage"),
    pytest.param(by_user_url, id="by-user"),
    pytest.param(by_model_url, id="by-model"),
]


@pytest.mark.parametrize("url", USAGE_URLS)
def test_anonymous_callers_get_401(api_client, team, url):
    assert_error(api_client.get(url(team.org.id)), 401, "unauthenticated")


@pytest.mark.parametrize("url", USAGE_URLS)
def test_outsiders_and_other_orgs_admins_get_404(api_client, team, url):
    other_admin = UserFactory()
    add_member(org_id=team.other_org.id, user=other_admin, role="admin")
    before = snapshot_balances()
    api_client.force_login(UserFactory())
    assert_error(api_client.get(url(team.org.id)), 404, "organization_not_found")
    api_client.force_login(other_admin)
    assert_error(api_client.get(url(team.org.id), {"granularity": "hour"}), 404, "organization_not_found")
    assert snapshot_balances() == before


@pytest.mark.parametrize("url", USAGE_URLS)
def test_unknown_and_malformed_org_ids_are_404(api_client, staff_user, url):
    api_client.force_login(staff_user)
    assert_error(api_client.get(url("no-such-org")), 404, "organization_not_found")
    malformed = url("x").replace("/x/", "/bad%20id/").replace("/x", "/bad%20id")
    assert api_client.get(malformed).status_code == 404


@pytest.mark.parametrize("url", USAGE_URLS)
@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"start": "notadate"}, id="start-not-a-date"),
        pytest.param({"end": "2025-13-01"}, id="end-invalid-month"),
        pytest.param({"start": "2025-02-01", "end": "2025-01-01"}, id="start-after-end"),
        pytest.param({"granularity": "hour"}, id="granularity-hour"),
        pytest.param({"user_id": "x" * 151}, id="user-id-too-long"),
        pytest.param({"model": "gpt\x00"}, id="nul-character"),
        pytest.param({"bogus": "1"}, id="unknown-parameter"),
        pytest.param({"end": "0001-01-01"}, id="end-too-early-for-default-start"),
        pytest.param({"end": "9999-12-31"}, id="end-out-of-range"),
        pytest.param({"start": "2020-01-01", "end": "2025-01-01"}, id="span-over-400-days"),
    ],
)
def test_bad_query_parameters_are_400(api_client, team, url, params):
    before = snapshot_balances()
    api_client.force_login(team.admin)

    response = api_client.get(url(team.org.id), params)

    error = assert_error(response, 400, "validation_error")
    assert error["details"]["fields"]
    assert snapshot_balances() == before


@pytest.mark.parametrize("url", [by_user_url, by_model_url])
@pytest.mark.parametrize(
    ("params", "status"), [({"page": "0"}, 400), ({"page_size": "x"}, 400), ({"page": "9"}, 404)]
)
def test_bad_pages(api_client, team, url, params, status):
    api_client.force_login(team.admin)
    response = api_client.get(url(team.org.id), params)
    assert response.status_code == status
    assert set(response.json()) == {"error"}


def test_blank_filters_mean_no_filter(api_client, march_usage):
    api_client.force_login(march_usage.admin)
    body = api_client.get(usage_url(march_usage.org.id), {**MARCH, "user_id": "", "model": ""}).json()
    assert body["total_credits_used"] == 7.625
    assert body["user_id"] is None


def test_datetimes_are_accepted_and_naive_ones_are_utc(api_client, march_usage):
    api_client.force_login(march_usage.admin)
    body = api_client.get(
        usage_url(march_usage.org.id), {"start": "2025-03-05T00:00:00", "end": "2025-03-10T09:00:00+00:00"}
    ).json()
    assert body["total_credits_used"] == 2.0
    assert body["period"] == {"start": "2025-03-05T00:00:00Z", "end": "2025-03-10T09:00:00Z"}


def test_options_asking_for_csv_answers_json_metadata(api_client, team):
    api_client.force_login(team.admin)
    response = api_client.options(by_user_url(team.org.id), {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")


def test_a_span_of_exactly_the_maximum_is_answered(api_client, team, settings):
    settings.USAGE_MAX_SPAN_DAYS = 10
    api_client.force_login(team.admin)

    inside = api_client.get(by_model_url(team.org.id), {"start": "2025-01-01", "end": "2025-01-10"})
    outside = api_client.get(by_model_url(team.org.id), {"start": "2025-01-01", "end": "2025-01-11"})

    assert inside.status_code == 200, inside.content
    error = assert_error(outside, 400, "validation_error")
    assert "at most 10 days" in error["details"]["fields"]["start"][0]
