"""X-Request-Id: kept when valid, replaced when not, generated when absent; on every response
(errors, admin, REST API); the same id in the request's log lines and on its audit events,
also in sync views run on threads under ASGI."""

import logging
import uuid

import httpx
import pytest

from billing.models import AuditEvent
from organizations.services import add_member, create_api_key
from orgbilling.observability.request_id import current_request_id
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc


def is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value
    except ValueError:
        return False


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["abc-123", "req_1.2:3", "A" * 128, "0"])
def test_a_valid_request_id_is_echoed(client, given):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=given)

    assert response.status_code == 200
    assert response["X-Request-Id"] == given


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["", "has space", "A" * 129, "semi;colon", "é", "a/b", "new\\nline"])
def test_an_invalid_request_id_is_replaced_by_a_new_uuid4(client, given):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=given)

    assert response["X-Request-Id"] != given
    assert is_uuid4(response["X-Request-Id"])


@pytest.mark.django_db
def test_a_request_without_an_id_gets_a_new_uuid4_each_time(client):
    first = client.get("/healthz")["X-Request-Id"]
    second = client.get("/healthz")["X-Request-Id"]

    assert is_uuid4(first) and is_uuid4(second)
    assert first != second


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/org-billing/credits/some-org", 401),  # the API's error shape
        ("/api/v1/no-such-endpoint", 404),  # Django's JSON 404
        ("/no-such-page", 404),  # Django's HTML 404
        ("/admin/login/", 200),  # the admin
    ],
)
def test_every_response_carries_the_request_id(client, path, status):
    response = client.get(path, HTTP_X_REQUEST_ID="err-req-1")

    assert response.status_code == status
    assert response["X-Request-Id"] == "err-req-1"


@pytest.mark.django_db
def test_a_refused_host_still_gets_the_request_id(client):
    response = client.get("/api/v1/me", HTTP_HOST="evil.example", HTTP_X_REQUEST_ID="bad-host-1")

    assert response.status_code == 400
    assert response["X-Request-Id"] == "bad-host-1"


@pytest.mark.django_db
def test_the_request_log_line_carries_the_request_id(client, json_logs):
    client.get("/api/v1/org-billing/credits/some-org", HTTP_X_REQUEST_ID="log-req-1")

    [line] = json_logs.events("request finished")
    assert line["request_id"] == "log-req-1"
    assert line["route"] == "api/v1/org-billing/credits/<str:org_id>"
    assert (line["method"], line["status"], line["level"], line["logger"]) == (
        "GET",
        401,
        "info",
        "orgbilling.requests",
    )
    assert line["timestamp"].endswith("Z")
    # Django's own line about the 401, logged after the middleware returned, carries it too
    [django_line] = [line for line in json_logs.lines if line["logger"] == "django.request"]
    assert django_line["request_id"] == "log-req-1"
    # and once the response is closed, the thread is no longer in that request
    assert current_request_id() is None
    assert json_logs.lines[-1]["request_id"] == "log-req-1"
    logging.getLogger("tests").warning("after the request")
    assert json_logs.lines[-1]["request_id"] is None


@pytest.mark.django_db
def test_audit_events_of_a_request_keep_its_id(api_client, staff_user, json_logs):
    # given: an org with credits and a member, set up outside any request
    org = OrganizationFactory()
    member = UserFactory()
    add_member(org_id=org.id, user=member, actor_label="test")
    from billing.services import add_credits_to_pool

    add_credits_to_pool(org_id=org.id, amount=mc(100), actor_label="test")
    before = set(AuditEvent.objects.values_list("pk", flat=True))
    api_client.force_login(staff_user)

    # when: credits are allocated through the REST API
    response = api_client.post(
        f"/api/v1/org-billing/credits/{org.id}/allocate",
        {"user_id": member.username, "credits": 10},
        format="json",
        HTTP_X_REQUEST_ID="alloc-req-1",
    )

    # then: every audit event it wrote, and its log lines, carry the id
    assert response.status_code in (200, 201), response.content
    assert response["X-Request-Id"] == "alloc-req-1"
    written = AuditEvent.objects.exclude(pk__in=before)
    assert written.exists()
    assert set(written.values_list("request_id", flat=True)) == {"alloc-req-1"}
    assert {line["request_id"] for line in json_logs.lines} == {"alloc-req-1"}
    # outside a request, nothing is made up
    assert set(AuditEvent.objects.filter(pk__in=before).values_list("request_id", flat=True)) == {""}


def test_under_asgi_a_sync_view_on_a_thread_writes_the_id_on_its_audit_events(
    gateway_server, transactional_db, json_logs
):
    # given: an org admin's API key (the REST API's sync views run on threads under uvicorn)
    org = OrganizationFactory()
    admin, member = UserFactory(), UserFactory()
    add_member(org_id=org.id, user=admin, role="admin", actor_label="test")
    add_member(org_id=org.id, user=member, actor_label="test")
    from billing.services import add_credits_to_pool

    add_credits_to_pool(org_id=org.id, amount=mc(100), actor_label="test")
    _, key = create_api_key(user=admin, name="asgi test", scopes=["read", "write"])

    # when
    response = httpx.post(
        f"{gateway_server.url}/api/v1/org-billing/credits/{org.id}/allocate",
        json={"user_id": member.username, "credits": 10},
        headers={"Authorization": f"Bearer {key}", "X-Request-Id": "asgi-req-1"},
        timeout=30,
    )

    # then
    assert response.status_code in (200, 201), response.text
    assert response.headers["X-Request-Id"] == "asgi-req-1"
    events = AuditEvent.objects.filter(request_id="asgi-req-1")
    assert events.filter(action__startswith="allocation").exists(), list(AuditEvent.objects.values())
    finished = [line for line in json_logs.events("request finished") if line["request_id"] == "asgi-req-1"]
    assert len(finished) == 1
    assert finished[0]["route"] == "api/v1/org-billing/credits/<str:org_id>/allocate"
