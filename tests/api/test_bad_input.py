"""Input PostgreSQL cannot store (NUL, unpaired surrogates), oversized bodies and deeply nested
JSON are clean 4xx answers in the error shape that change nothing — in the REST API, the admin's
search and the gateway (issue 11 §5)."""

import pytest

from tests.helpers import assert_error, snapshot_balances

BASE = "/api/v1/org-billing"


@pytest.fixture
def admin_client(api_client, make_funded_member, staff_user):
    org, member, _ = make_funded_member(pool=1000, allocation=100)
    api_client.force_login(staff_user)
    return api_client, org, member


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    [
        b'{"user_id": "a\\u0000b", "credits": 1}',  # escaped NUL
        b'{"user_id": "a\\ud800b", "credits": 1}',  # lone high surrogate
        b'{"user_id": "a\\udc00b", "credits": 1}',  # lone low surrogate
        b'{"user_id": "a\x00b", "credits": 1}',  # raw NUL
    ],
    ids=["escaped-nul", "high-surrogate", "low-surrogate", "raw-nul"],
)
def test_nul_and_unpaired_surrogates_in_a_body_are_400(admin_client, raw):
    client, org, _ = admin_client
    before = snapshot_balances()

    response = client.post(f"{BASE}/credits/{org.id}/allocate", raw, content_type="application/json")

    error = assert_error(response, 400, "validation_error")
    assert "NUL" in error["message"]
    assert snapshot_balances() == before


@pytest.mark.django_db
def test_a_paired_surrogate_and_an_escaped_backslash_are_ordinary_text(admin_client):
    client, org, member = admin_client
    # 😀 as a surrogate pair, and a literal backslash followed by "u0000": both valid JSON text
    raw = b'{"user_id": "\\ud83d\\ude00 \\\\u0000", "credits": 1}'

    response = client.post(f"{BASE}/credits/{org.id}/allocate", raw, content_type="application/json")

    assert_error(response, 404, "user_not_found")  # parsed and looked up, not refused as bad text


@pytest.mark.django_db
def test_nul_in_a_query_parameter_is_400(admin_client):
    client, org, _ = admin_client

    response = client.get(f"{BASE}/usage/{org.id}/by-model?model=a%00b")

    error = assert_error(response, 400, "validation_error")
    assert list(error["details"]["fields"]) == ["model"]


@pytest.mark.django_db
def test_nul_in_the_admin_search_is_400_not_a_database_error(client, staff_user):
    client.force_login(staff_user)

    response = client.get("/admin/billing/creditusageattribution/?q=%00")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.django_db
def test_a_body_over_the_limit_is_413(admin_client, settings):
    client, org, member = admin_client
    settings.API_MAX_BODY_BYTES = 1000
    before = snapshot_balances()

    response = client.post(
        f"{BASE}/credits/{org.id}/allocate",
        {"user_id": member.username, "credits": 1, "note": "x" * 2000},
        format="json",
    )

    error = assert_error(response, 413, "request_too_large")
    assert error["details"] == {"limit_bytes": 1000}
    assert snapshot_balances() == before


@pytest.mark.django_db
def test_deeply_nested_json_is_400(admin_client):
    client, org, _ = admin_client
    raw = b'{"user_id": ' + b"[" * 100_000 + b"]" * 100_000 + b', "credits": 1}'

    response = client.post(f"{BASE}/credits/{org.id}/allocate", raw, content_type="application/json")

    assert_error(response, 400, "malformed_request")
