"""API keys: the services, authentication with a key, org scope and scopes, the /keys endpoints
and the admin page."""

import hashlib
import json
import secrets
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient, APIRequestFactory

from billing.errors import OrganizationNotFound
from billing.models import AuditEvent
from billing.services.subscriptions import create_subscription
from organizations.auth.api_key_auth import ApiKeyAuthentication
from organizations.errors import ApiKeyNotFound
from organizations.models import ApiKey, OrganizationMember
from organizations.services import add_member, authenticate_api_key, create_api_key, revoke_api_key
from orgbilling.errors import ValidationFailed
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error, snapshot_balances

pytestmark = pytest.mark.django_db

BASE = "/api/v1/org-billing"
KEYS = "/api/v1/keys"


def key_client(raw_key: str, **kwargs) -> APIClient:
    """A client that signs every request with the key, and has no session."""
    client = APIClient(**kwargs)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def unknown_key() -> str:
    return "obk_" + secrets.token_urlsafe(32)


@pytest.fixture
def funded(make_funded_member):
    """Org ``acme`` (admin ``ada``, funded member) and org ``other`` where ada is admin too."""
    ada = UserFactory(username="ada")
    acme = OrganizationFactory(id="acme", created_by=ada)
    _, member, _ = make_funded_member(pool=1000, allocation=100, org=acme)
    other = OrganizationFactory(id="other", created_by=ada)
    make_funded_member(pool=500, allocation=50, org=other)
    return ada, member


# --- services -------------------------------------------------------------------------------


def test_create_returns_an_obk_key_once_and_stores_only_its_sha256():
    user = UserFactory()

    key, raw = create_api_key(user=user, name="ci")

    assert raw.startswith("obk_") and len(raw) == 47
    key.refresh_from_db()
    assert key.prefix == raw[:12]
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert key.scopes == ["read", "write"]
    assert key.org_id is None and key.revoked_at is None and key.last_used_at is None


def test_the_database_row_holds_no_usable_key_material():
    user = UserFactory()
    key, raw = create_api_key(user=user, name="notebook", scopes=["read", "charge"])

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_keys WHERE id = %s", [key.pk])
        row = cursor.fetchone()
        columns = [c.name for c in cursor.description]
    stored = dict(zip(columns, row, strict=True))

    text = json.dumps(stored, default=str)
    assert raw not in text
    assert raw[12:] not in text  # beyond the displayed prefix, nothing of the key is kept
    assert stored["key_hash"] != raw
    assert len(stored["key_hash"]) == 64
    # Audit rows do not hold the key either.
    assert raw not in json.dumps(list(AuditEvent.objects.values("metadata", "target_id")), default=str)
    # The stored values do not authenticate: only the key itself does.
    assert authenticate_api_key(stored["key_hash"]) is None
    assert authenticate_api_key(stored["prefix"]) is None
    assert authenticate_api_key(raw) is not None


def test_two_keys_never_share_a_hash_or_a_key():
    user = UserFactory()
    raws = {create_api_key(user=user, name=f"k{i}")[1] for i in range(20)}
    assert len(raws) == 20
    assert ApiKey.objects.values("key_hash").distinct().count() == 20


def test_create_writes_an_audit_event():
    user = UserFactory()
    OrganizationFactory(id="acme", created_by=user)

    key, _ = create_api_key(user=user, name="ci", org_id="acme")

    event = AuditEvent.objects.get(action="api_key.created")
    assert (event.actor, event.org_id, event.target_type, event.target_id) == (
        user,
        "acme",
        "api_key",
        str(key.pk),
    )
    assert event.metadata["prefix"] == key.prefix
    assert event.metadata["scopes"] == ["read", "write"]


def test_an_org_scope_needs_an_org_the_user_can_see():
    user = UserFactory()
    OrganizationFactory(id="theirs")
    suspended_org = OrganizationFactory(id="suspended")
    add_member(org_id="suspended", user=user)
    OrganizationMember.objects.filter(org=suspended_org, user=user).update(status="suspended")

    for org_id in ("theirs", "suspended", "missing"):
        with pytest.raises(OrganizationNotFound):
            create_api_key(user=user, name="x", org_id=org_id)
    assert not ApiKey.objects.exists()


def test_a_system_admin_may_scope_a_key_to_any_org(staff_user):
    OrganizationFactory(id="theirs")
    key, _ = create_api_key(user=staff_user, name="ops", org_id="theirs")
    assert key.org_id == "theirs"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x", "expires_at": timezone.now() - timedelta(seconds=1)}, "expires_at"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["read", "admin"]}, "scopes"),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(kwargs, field):
    with pytest.raises(ValidationFailed) as refused:
        create_api_key(user=UserFactory(), **kwargs)
    assert field in refused.value.details
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action="api_key.created").exists()


def test_revoke_writes_an_audit_event_once():
    user, admin = UserFactory(), UserFactory()
    key, raw = create_api_key(user=user, name="ci")

    revoke_api_key(key_id=key.pk, actor=admin)
    again = revoke_api_key(key_id=key.pk, actor=admin)

    assert again.revoked_at is not None
    events = AuditEvent.objects.filter(action="api_key.revoked")
    assert events.count() == 1
    assert events.get().actor == admin
    assert events.get().metadata["owner"] == user.username
    assert authenticate_api_key(raw) is None


def test_revoking_an_unknown_key_is_404():
    with pytest.raises(ApiKeyNotFound):
        revoke_api_key(key_id=987654, actor=None)


def test_authenticate_refuses_unknown_malformed_revoked_expired_and_deactivated():
    user = UserFactory()
    _, good = create_api_key(user=user, name="good")
    revoked, revoked_raw = create_api_key(user=user, name="revoked")
    revoke_api_key(key_id=revoked.pk, actor=user)
    expired, expired_raw = create_api_key(
        user=user, name="expired", expires_at=timezone.now() + timedelta(days=1)
    )
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    inactive = UserFactory(is_active=False)
    _, inactive_raw = create_api_key(user=inactive, name="gone")

    assert authenticate_api_key(good) is not None
    for raw in (
        unknown_key(),
        "obk_short",
        good + "x",
        good.upper(),
        "",
        revoked_raw,
        expired_raw,
        inactive_raw,
    ):
        assert authenticate_api_key(raw) is None, raw


def test_last_used_at_is_written_at_most_once_a_minute():
    key, raw = create_api_key(user=UserFactory(), name="busy")

    authenticate_api_key(raw)
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    with CaptureQueriesContext(connection) as queries:
        authenticate_api_key(raw)
    assert first is not None
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first

    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    authenticate_api_key(raw)
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first - timedelta(seconds=1)


def test_a_bearer_token_that_is_not_an_api_key_is_left_to_the_bearer_authentication():
    request = APIRequestFactory().get("/api/v1/me", HTTP_AUTHORIZATION="Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig")
    from rest_framework.request import Request

    assert ApiKeyAuthentication().authenticate(Request(request)) is None


# --- using a key ----------------------------------------------------------------------------


def test_create_use_revoke_then_401(api_client, funded):
    ada, _ = funded
    api_client.force_login(ada)
    created = api_client.post(KEYS, {"name": "script"}, format="json")
    assert created.status_code == 201, created.content
    raw = created.json()["key"]
    key_id = created.json()["api_key"]["id"]
    client = key_client(raw)

    used = client.get(f"{BASE}/credits/acme")
    assert used.status_code == 200, used.content
    assert ApiKey.objects.get(pk=key_id).last_used_at is not None

    revoked = api_client.delete(f"{KEYS}/{key_id}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    assert_error(client.get(f"{BASE}/credits/acme"), 401, "unauthenticated")


def test_an_expired_key_is_401(funded):
    ada, _ = funded
    key, raw = create_api_key(user=ada, name="short", expires_at=timezone.now() + timedelta(hours=1))
    assert key_client(raw).get(f"{BASE}/credits/acme").status_code == 200

    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert_error(key_client(raw).get(f"{BASE}/credits/acme"), 401, "unauthenticated")


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": "Bearer obk_not-a-key"},
        {"HTTP_AUTHORIZATION": "Bearer " + "obk_" + "A" * 43},
        {"HTTP_AUTHORIZATION": "bearer " + "obk_" + "A" * 43},
        {"HTTP_X_API_KEY": "garbage"},
        {"HTTP_X_API_KEY": ""},
        {"HTTP_AUTHORIZATION": "Bearer obk_\u00e9\u00e9"},
    ],
    ids=["malformed", "unknown", "lowercase-scheme", "x-api-key-garbage", "x-api-key-empty", "non-ascii"],
)
def test_malformed_or_unknown_keys_are_401_in_the_error_shape(funded, headers):
    response = APIClient().get(f"{BASE}/credits/acme", **headers)
    error = assert_error(response, 401, "unauthenticated")
    assert "API key" in error["message"]


def test_anonymous_requests_are_still_401(funded):
    assert_error(APIClient().get(f"{BASE}/credits/acme"), 401, "unauthenticated")


def test_the_authentication_challenge_is_bearer():
    assert ApiKeyAuthentication().authenticate_header(None).startswith("Bearer ")


@pytest.mark.parametrize(
    "headers", [{}, {"HTTP_AUTHORIZATION": "Bearer obk_not-a-key"}], ids=["anonymous", "bad-key"]
)
def test_401_responses_carry_a_bearer_challenge(funded, headers):
    response = APIClient().get(f"{BASE}/credits/acme", **headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_x_api_key_header_works_too(funded):
    ada, _ = funded
    _, raw = create_api_key(user=ada, name="header")
    response = APIClient().get(f"{BASE}/credits/acme", HTTP_X_API_KEY=raw)
    assert response.status_code == 200


def test_a_key_acts_with_its_owners_roles(funded):
    ada, member = funded
    _, member_raw = create_api_key(user=member, name="member")
    _, admin_raw = create_api_key(user=ada, name="admin")
    body = {"user_id": member.username, "credits": 1}
    before = snapshot_balances()

    refused = key_client(member_raw).post(f"{BASE}/credits/acme/allocate", body, format="json")
    assert_error(refused, 403, "forbidden")
    assert snapshot_balances() == before
    assert key_client(member_raw).get(f"{BASE}/credits/acme").status_code == 200

    allowed = key_client(admin_raw).post(f"{BASE}/credits/acme/allocate", body, format="json")
    assert allowed.status_code == 200, allowed.content


def test_key_callers_are_not_subject_to_csrf(funded):
    ada, member = funded
    _, raw = create_api_key(user=ada, name="csrf")
    client = key_client(raw, enforce_csrf_checks=True)

    response = client.post(
        f"{BASE}/credits/acme/allocate", {"user_id": member.username, "credits": 1}, format="json"
    )

    assert response.status_code == 200, response.content


def test_a_read_only_key_gets_403_on_writes_and_changes_nothing(funded):
    ada, member = funded
    _, raw = create_api_key(user=ada, name="ro", scopes=["read"])
    client = key_client(raw)
    before = snapshot_balances()

    assert client.get(f"{BASE}/credits/acme").status_code == 200
    response = client.post(
        f"{BASE}/credits/acme/allocate", {"user_id": member.username, "credits": 1}, format="json"
    )

    assert_error(response, 403, "forbidden")
    assert snapshot_balances() == before


def test_a_charge_only_key_cannot_use_the_rest_api(funded):
    ada, _ = funded
    _, raw = create_api_key(user=ada, name="gateway", scopes=["charge"])
    assert_error(key_client(raw).get(f"{BASE}/credits/acme"), 403, "forbidden")


# --- org scope ------------------------------------------------------------------------------


def _call(client, method, url, body):
    return (
        getattr(client, method)(url, body, format="json")
        if body is not None
        else getattr(client, method)(url)
    )


def test_an_org_scoped_key_gets_404_on_every_endpoint_of_another_org(funded):
    ada, member = funded  # ada is admin of both acme and other
    other_member = OrganizationMember.objects.filter(org_id="other", role="member").get().user.username
    create_subscription(org_id="other", plan_code="starter", owner=ada)
    _, raw = create_api_key(user=ada, name="acme only", org_id="acme")
    client = key_client(raw)
    before = snapshot_balances()
    endpoints = [
        ("get", f"{BASE}/subscriptions/other", None),
        ("put", f"{BASE}/subscriptions/other/upgrade", {"plan_code": "professional"}),
        ("post", f"{BASE}/subscriptions/other/cancel", {}),
        ("get", f"{BASE}/credits/other", None),
        ("post", f"{BASE}/credits/other/add", {"credits": 10}),
        ("post", f"{BASE}/credits/other/allocate", {"user_id": other_member, "credits": 1}),
        ("get", f"{BASE}/credits/other/allocations", None),
        ("get", f"{BASE}/credits/other/usage", None),
        ("patch", f"{BASE}/credits/other/allocations/{other_member}", {"credits": 1}),
        ("delete", f"{BASE}/credits/other/allocations/{other_member}", None),
        (
            "post",
            f"{BASE}/credits/other/transfer",
            {"from_user_id": other_member, "to_user_id": "ada", "credits": 1},
        ),
        ("get", f"{BASE}/billing/org/other", None),
        ("get", f"{BASE}/usage/other/by-user", None),
        ("get", f"{BASE}/usage/other/by-model", None),
        ("get", f"{BASE}/other/history", None),
        ("get", "/api/v1/organizations/other/members", None),
        ("post", "/api/v1/organizations/other/members", {"user_id": member.username}),
        ("patch", f"/api/v1/organizations/other/members/{other_member}", {"role": "admin"}),
        ("delete", f"/api/v1/organizations/other/members/{other_member}", None),
        ("put", "/api/v1/me/default-org", {"org_id": "other"}),
        ("post", f"{BASE}/subscriptions", {"org_id": "brand-new", "plan_code": "starter"}),
    ]

    for method, url, body in endpoints:
        response = _call(client, method, url, body)
        assert response.status_code == 404, (method, url, response.status_code, response.content[:300])
        assert response.json()["error"]["code"] == "organization_not_found", (method, url)
    assert snapshot_balances() == before
    # Its own org answers.
    assert client.get(f"{BASE}/credits/acme").status_code == 200
    assert client.get(f"{BASE}/billing/org/acme").status_code == 200


def test_an_org_scoped_key_of_a_system_admin_reaches_only_its_org(staff_user, funded):
    _, raw = create_api_key(user=staff_user, name="ops acme", org_id="acme")
    client = key_client(raw)

    assert client.get(f"{BASE}/credits/acme").status_code == 200
    assert_error(client.get(f"{BASE}/credits/other"), 404, "organization_not_found")
    assert_error(client.get(f"{BASE}/credits/other", HTTP_X_ORG_ID="other"), 404, "organization_not_found")


def test_an_org_scoped_key_sees_only_its_org_in_me_and_the_user_dashboard(funded):
    ada, _ = funded
    _, raw = create_api_key(user=ada, name="acme only", org_id="other")
    client = key_client(raw)

    me = client.get("/api/v1/me").json()
    dashboard = client.get(f"{BASE}/billing/user").json()

    assert [o["org_id"] for o in me["organizations"]] == ["other"]
    assert me["default_org_id"] == "other"
    assert me["billing_context"] == {
        "org_id": "other",
        "source": "default",
        "can_bill": True,
        "refusal_code": None,
    }
    assert [o["org_id"] for o in dashboard["organizations"]] == ["other"]
    assert dashboard["default_org_id"] == "other"
    assert dashboard["totals"]["organizations"] == 1
    assert "acme" not in json.dumps(me) + json.dumps(dashboard)


def test_an_unscoped_key_sees_what_the_session_sees(api_client, funded):
    ada, _ = funded
    _, raw = create_api_key(user=ada, name="all")
    api_client.force_login(ada)

    for url in ("/api/v1/me", f"{BASE}/billing/user", f"{BASE}/credits/other"):
        assert key_client(raw).get(url).json() == api_client.get(url).json(), url


# --- /keys endpoints ------------------------------------------------------------------------


def test_post_keys_answers_the_key_once_and_lists_never_show_it(api_client, funded):
    ada, _ = funded
    api_client.force_login(ada)
    expires = (timezone.now() + timedelta(days=30)).isoformat()

    created = api_client.post(
        KEYS, {"name": "deploy", "org_id": "acme", "expires_at": expires, "scopes": ["read"]}, format="json"
    )

    assert created.status_code == 201
    body = created.json()
    raw = body["key"]
    assert set(body["api_key"]) == {
        "id", "name", "prefix", "user_id", "org_id", "scopes",
        "created_at", "expires_at", "last_used_at", "revoked_at",
    }  # fmt: skip
    assert body["api_key"]["prefix"] == raw[:12]
    assert (body["api_key"]["org_id"], body["api_key"]["scopes"], body["api_key"]["user_id"]) == (
        "acme",
        ["read"],
        "ada",
    )
    listing = api_client.get(KEYS)
    assert listing.status_code == 200
    assert listing.json()["count"] == 1
    assert raw not in listing.content.decode()
    assert raw[12:] not in listing.content.decode()


def test_keys_list_shows_only_the_callers_keys(api_client, funded):
    ada, member = funded
    create_api_key(user=member, name="theirs")
    mine, _ = create_api_key(user=ada, name="mine")
    api_client.force_login(ada)

    results = api_client.get(KEYS).json()["results"]

    assert [k["id"] for k in results] == [mine.pk]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "validation_error"),
        ({"name": ""}, 400, "validation_error"),
        ({"name": 5}, 400, "validation_error"),
        ({"name": "x", "surprise": 1}, 400, "validation_error"),
        ({"name": "x", "scopes": ["root"]}, 400, "validation_error"),
        ({"name": "x", "scopes": []}, 400, "validation_error"),
        ({"name": "x", "scopes": "read"}, 400, "validation_error"),
        ({"name": "x", "expires_at": "2000-01-01T00:00:00Z"}, 400, "validation_error"),
        ({"name": "x", "expires_at": "tomorrow"}, 400, "validation_error"),
        ({"name": "x", "org_id": 12}, 400, "validation_error"),
        ({"name": "x", "org_id": "nobody-knows"}, 404, "organization_not_found"),
    ],
)
def test_post_keys_refuses_bad_input_and_writes_nothing(api_client, funded, body, status, code):
    ada, _ = funded
    api_client.force_login(ada)
    before = snapshot_balances()

    assert_error(api_client.post(KEYS, body, format="json"), status, code)

    assert not ApiKey.objects.exists()
    assert snapshot_balances() == before


def test_post_keys_refuses_malformed_json(api_client, funded):
    ada, _ = funded
    api_client.force_login(ada)
    response = api_client.generic("POST", KEYS, "{bad", content_type="application/json")
    assert_error(response, 400, "malformed_request")
    assert not ApiKey.objects.exists()


def test_a_member_cannot_scope_a_key_to_an_org_they_do_not_belong_to(api_client, funded):
    _, member = funded
    api_client.force_login(member)
    assert_error(
        api_client.post(KEYS, {"name": "x", "org_id": "other"}, format="json"), 404, "organization_not_found"
    )


def test_keys_need_a_signed_in_caller():
    assert_error(APIClient().get(KEYS), 401, "unauthenticated")
    assert_error(APIClient().post(KEYS, {"name": "x"}, format="json"), 401, "unauthenticated")


def test_an_api_key_cannot_create_list_or_revoke_keys(funded):
    ada, _ = funded
    key, raw = create_api_key(user=ada, name="script")
    client = key_client(raw)

    assert_error(client.post(KEYS, {"name": "child"}, format="json"), 403, "forbidden")
    assert_error(client.get(KEYS), 403, "forbidden")
    assert_error(client.delete(f"{KEYS}/{key.pk}"), 403, "forbidden")
    assert_error(client.get("/api/v1/organizations/acme/keys"), 403, "forbidden")
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().revoked_at is None


def test_revoking_someone_elses_key_is_404(api_client, funded):
    ada, member = funded
    theirs, _ = create_api_key(user=member, name="theirs")
    api_client.force_login(ada)

    assert_error(api_client.delete(f"{KEYS}/{theirs.pk}"), 404, "api_key_not_found")
    assert_error(api_client.delete(f"{KEYS}/99999999"), 404, "api_key_not_found")
    assert ApiKey.objects.get(pk=theirs.pk).revoked_at is None


def test_revoking_twice_answers_the_revoked_key(api_client, funded):
    ada, _ = funded
    key, _ = create_api_key(user=ada, name="once")
    api_client.force_login(ada)

    first = api_client.delete(f"{KEYS}/{key.pk}")
    second = api_client.delete(f"{KEYS}/{key.pk}")

    assert first.status_code == second.status_code == 200
    assert first.json()["revoked_at"] == second.json()["revoked_at"]
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1


# --- org admins -----------------------------------------------------------------------------


@pytest.fixture
def org_keys(funded):
    ada, member = funded
    scoped, scoped_raw = create_api_key(user=member, name="member acme", org_id="acme")
    unscoped, _ = create_api_key(user=member, name="member all")
    elsewhere, _ = create_api_key(user=ada, name="ada other", org_id="other")
    return ada, member, scoped, scoped_raw, unscoped, elsewhere


def test_org_admin_lists_only_the_keys_scoped_to_the_org(api_client, org_keys):
    ada, _, scoped, _, _, _ = org_keys
    api_client.force_login(ada)

    response = api_client.get("/api/v1/organizations/acme/keys")

    assert response.status_code == 200
    assert [k["id"] for k in response.json()["results"]] == [scoped.pk]
    assert response.json()["results"][0]["user_id"] == scoped.user.username


def test_org_admin_revokes_a_members_org_key(api_client, org_keys):
    ada, _, scoped, scoped_raw, _, _ = org_keys
    api_client.force_login(ada)
    assert key_client(scoped_raw).get(f"{BASE}/credits/acme").status_code == 200

    response = api_client.delete(f"/api/v1/organizations/acme/keys/{scoped.pk}")

    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert_error(key_client(scoped_raw).get(f"{BASE}/credits/acme"), 401, "unauthenticated")
    event = AuditEvent.objects.get(action="api_key.revoked")
    assert (event.actor, event.org_id) == (ada, "acme")


def test_org_admin_cannot_revoke_keys_not_scoped_to_the_org(api_client, org_keys):
    ada, _, _, _, unscoped, elsewhere = org_keys
    api_client.force_login(ada)

    assert_error(
        api_client.delete(f"/api/v1/organizations/acme/keys/{unscoped.pk}"), 404, "api_key_not_found"
    )
    assert_error(
        api_client.delete(f"/api/v1/organizations/acme/keys/{elsewhere.pk}"), 404, "api_key_not_found"
    )
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()


def test_members_get_403_and_outsiders_404_on_org_keys(api_client, org_keys):
    _, member, scoped, _, _, _ = org_keys
    outsider = UserFactory()

    api_client.force_login(member)
    assert_error(api_client.get("/api/v1/organizations/acme/keys"), 403, "forbidden")
    assert_error(api_client.delete(f"/api/v1/organizations/acme/keys/{scoped.pk}"), 403, "forbidden")
    api_client.force_login(outsider)
    assert_error(api_client.get("/api/v1/organizations/acme/keys"), 404, "organization_not_found")
    assert_error(
        api_client.delete(f"/api/v1/organizations/acme/keys/{scoped.pk}"), 404, "organization_not_found"
    )
    assert_error(APIClient().get("/api/v1/organizations/acme/keys"), 401, "unauthenticated")
    assert ApiKey.objects.get(pk=scoped.pk).revoked_at is None


def test_system_admins_list_and_revoke_any_orgs_keys(api_client, staff_user, org_keys):
    _, _, scoped, _, _, _ = org_keys
    api_client.force_login(staff_user)

    assert api_client.get("/api/v1/organizations/acme/keys").json()["count"] == 1
    assert api_client.delete(f"/api/v1/organizations/acme/keys/{scoped.pk}").status_code == 200


# --- admin ----------------------------------------------------------------------------------


def test_admin_lists_keys_without_their_hash_and_cannot_add_or_edit(admin_client: Client, org_keys):
    _, _, scoped, _, _, _ = org_keys

    listing = admin_client.get(reverse("admin:organizations_apikey_changelist"))
    detail = admin_client.get(reverse("admin:organizations_apikey_change", args=[scoped.pk]))
    add = admin_client.get(reverse("admin:organizations_apikey_add"))
    edit = admin_client.post(
        reverse("admin:organizations_apikey_change", args=[scoped.pk]), {"name": "renamed"}
    )

    assert listing.status_code == detail.status_code == 200
    assert scoped.prefix in listing.content.decode()
    for page in (listing, detail):
        assert scoped.key_hash not in page.content.decode()
    assert add.status_code == 403
    assert edit.status_code == 403
    assert ApiKey.objects.get(pk=scoped.pk).name == "member acme"


def test_admin_action_revokes_selected_keys_through_the_service(admin_client: Client, org_keys):
    _, _, scoped, scoped_raw, unscoped, _ = org_keys

    response = admin_client.post(
        reverse("admin:organizations_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [scoped.pk, unscoped.pk]},
    )

    assert response.status_code == 302
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 2
    assert AuditEvent.objects.filter(action="api_key.revoked", actor_label="admin").count() == 2
    assert authenticate_api_key(scoped_raw) is None


def test_an_org_scoped_key_moves_money_in_its_own_org_with_an_idempotency_key(funded):
    ada, member = funded
    _, raw = create_api_key(user=ada, name="acme", org_id="acme")
    client = key_client(raw)
    body = {"user_id": member.username, "credits": 2}
    url = f"{BASE}/credits/acme/allocate"

    first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    replay = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert first.status_code == 200, first.content
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == first.json()
