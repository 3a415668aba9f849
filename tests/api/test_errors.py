"""Every error leaves in one shape: auth, CSRF, malformed JSON, unknown routes, bad input."""

import pytest
from rest_framework.test import APIClient

from tests.helpers import assert_error, snapshot_balances

pytestmark = pytest.mark.django_db

BASE = "/api/v1/org-billing"


def test_anonymous_callers_get_401_in_the_error_shape(api_client, make_funded_member):
    org, _, _ = make_funded_member()
    for url in (f"{BASE}/credits/{org.id}", f"{BASE}/billing/user", "/api/v1/me"):
        assert_error(api_client.get(url), 401, "unauthenticated")
    assert_error(
        api_client.post(f"{BASE}/credits/{org.id}/add", {"credits": 1}, format="json"), 401, "unauthenticated"
    )


def test_unknown_api_routes_are_json_404(api_client, staff_user):
    api_client.force_login(staff_user)
    assert_error(api_client.get("/api/v1/nothing-here"), 404, "not_found")


def test_malformed_json_is_400_and_writes_nothing(api_client, staff_user, make_funded_member):
    org, _, _ = make_funded_member()
    api_client.force_login(staff_user)
    before = snapshot_balances()
    for raw in ("{bad", '{"credits": NaN}', '{"credits": Infinity}', "[1, 2"):
        response = api_client.generic(
            "POST", f"{BASE}/credits/{org.id}/add", raw, content_type="application/json"
        )
        assert_error(response, 400, "malformed_request")
    assert snapshot_balances() == before


@pytest.mark.parametrize(
    "credits",
    ["100", -5, 0, "NaN", 1.0001, 10**20, True, None, [1], {"value": 1}],
)
def test_bad_amounts_are_400_and_write_nothing(api_client, staff_user, make_funded_member, credits):
    org, _, _ = make_funded_member()
    api_client.force_login(staff_user)
    before = snapshot_balances()
    response = api_client.post(f"{BASE}/credits/{org.id}/add", {"credits": credits}, format="json")
    assert_error(response, 400, "validation_error")
    assert snapshot_balances() == before


def test_unknown_fields_are_refused(api_client, staff_user, make_funded_member):
    org, _, _ = make_funded_member()
    api_client.force_login(staff_user)
    response = api_client.post(f"{BASE}/credits/{org.id}/add", {"credits": 1, "bonus": 1000}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert "bonus" in error["details"]["fields"]


def test_session_callers_must_send_the_csrf_token(staff_user, make_funded_member):
    org, _, _ = make_funded_member()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff_user)
    before = snapshot_balances()
    response = client.post(f"{BASE}/credits/{org.id}/add", {"credits": 1}, format="json")
    assert_error(response, 403, "forbidden")
    assert snapshot_balances() == before
