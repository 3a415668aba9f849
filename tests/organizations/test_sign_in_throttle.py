"""Password sign-in (/admin/login/, /api-auth/login/) throttled per username and per client
address by django-axes (organizations/auth/throttling.py): 429 and the lockout page, audited."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from axes.models import AccessAttempt, AccessFailureLog

from billing.models import AuditEvent
from tests.factories import UserFactory
from tests.helpers import assert_error
from tests.oidc_provider import new_sub

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib"),
]

PASSWORD = "a-long-staff-password"
ADMIN_LOGIN = "/admin/login/"
API_LOGIN = "/api-auth/login/"
ME = "/api/v1/me"
LIMIT = 3


@pytest.fixture(autouse=True)
def limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


@pytest.fixture
def staff():
    user = UserFactory(is_staff=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def attempt(client, username, password, path=ADMIN_LOGIN, address="10.0.0.1", **headers):
    return client.post(
        path, {"username": username, "password": password, "next": ME}, REMOTE_ADDR=address, **headers
    )


def fail(client, username, times, **kwargs):
    for _ in range(times):
        response = attempt(client, username, "wrong-password", **kwargs)
        assert response.status_code in (200, 429)  # the form again, then the lockout


def test_a_successful_sign_in_clears_the_failures(client, staff):
    fail(client, staff.username, LIMIT - 1)
    assert attempt(client, staff.username, PASSWORD).status_code == 302
    client.logout()

    fail(client, staff.username, LIMIT - 1)  # the limit, counted without the reset

    assert attempt(client, staff.username, PASSWORD).status_code == 302
    assert client.get(ME).status_code == 200


def test_a_username_is_locked_after_repeated_failures_even_from_other_addresses(client, staff):
    # given: failures for one username from several addresses
    for number in range(LIMIT):
        fail(client, staff.username, 1, address=f"10.0.1.{number}")

    # when: the right password comes, from yet another address
    response = attempt(client, staff.username, PASSWORD, address="10.0.2.1")

    # then: refused with the lockout page, and not signed in
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 15 * 60
    assert b"Too many failed sign-in attempts" in response.content
    assert_error(client.get(ME), 401, "unauthenticated")


def test_an_address_is_locked_after_failures_across_usernames(client, staff):
    for number in range(LIMIT):
        fail(client, f"guess-{number}", 1, address="10.0.3.1")

    assert attempt(client, staff.username, PASSWORD, address="10.0.3.1").status_code == 429
    # the same user from another address is not locked
    assert attempt(client, staff.username, PASSWORD, address="10.0.3.2").status_code == 302


def test_a_forwarded_for_header_does_not_escape_the_address_lock(client, staff):
    for number in range(LIMIT):
        fail(client, f"guess-{number}", 1, address="10.0.4.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{number}")

    response = attempt(
        client, staff.username, PASSWORD, address="10.0.4.1", HTTP_X_FORWARDED_FOR="192.0.2.99"
    )

    assert response.status_code == 429


def test_the_browsable_api_login_is_throttled_too(client, staff):
    fail(client, staff.username, LIMIT, path=API_LOGIN)

    response = attempt(client, staff.username, PASSWORD, path=API_LOGIN)

    assert response.status_code == 429
    assert_error(client.get(ME), 401, "unauthenticated")


def test_a_json_client_gets_the_error_shape(client, staff):
    fail(client, staff.username, LIMIT)

    response = attempt(client, staff.username, PASSWORD, HTTP_ACCEPT="application/json")

    error = assert_error(response, 429, "too_many_sign_in_failures")
    assert error["details"] == {"retry_after_seconds": 15 * 60}


def test_a_lockout_is_audited_once_and_every_failure_is_kept(client, staff):
    fail(client, staff.username, LIMIT + 2, address="10.0.5.1")

    [event] = AuditEvent.objects.filter(action="auth.locked_out")
    assert event.target_type == "user"
    assert event.target_id == staff.username
    assert event.actor_label == "axes"
    assert event.ip_address == "10.0.5.1"
    assert event.metadata["path"] == ADMIN_LOGIN
    assert event.metadata["failures"] == LIMIT
    assert AccessAttempt.objects.filter(username=staff.username).exists()
    assert AccessFailureLog.objects.filter(username=staff.username).count() == LIMIT


def test_the_lockout_ends_after_the_cool_off(client, staff, settings):
    fail(client, staff.username, LIMIT)
    assert attempt(client, staff.username, PASSWORD).status_code == 429

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=15, seconds=5)):
        assert attempt(client, staff.username, PASSWORD).status_code == 302


def test_an_address_locked_for_passwords_can_still_sign_in_through_sso(client, keycloak):
    # given: the test client's address (127.0.0.1) locked by password guesses
    for number in range(LIMIT):
        fail(client, f"guess-{number}", 1, address="127.0.0.1")
    assert attempt(client, "guess-0", "wrong-password", address="127.0.0.1").status_code == 429
    sub = new_sub()
    keycloak.set_user(sub, {"email": f"{sub}@example.test"})

    # when: someone behind it signs in through the provider
    response = keycloak.browser_sign_in(client, sub)

    # then
    assert response.status_code == 302
    assert client.get(ME).json()["user"]["user_id"] == sub


def test_failed_sso_callbacks_do_not_count_towards_the_address_lock(client, keycloak, settings):
    settings.OIDC_ISSUER = "https://keycloak.example.com/realms/other"  # every ID token refused
    for _ in range(LIMIT + 1):
        keycloak.browser_sign_in(client, new_sub())
    assert_error(client.get(ME), 401, "unauthenticated")

    assert not AccessAttempt.objects.exists()
