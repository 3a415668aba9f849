"""Browser sessions re-checked against the identity provider (a real one, tests/oidc_provider.py,
over HTTP) and the cap on staff sessions (organizations/auth/sessions.py)."""

import socket
import time

import httpx
import pytest

from billing.models import AuditEvent
from organizations.models import User
from tests.billing.gateway.conftest import gateway_server  # noqa: F401 (fixture)
from tests.factories import UserFactory
from tests.helpers import assert_error
from tests.oidc_provider import STAFF_ROLE, new_sub

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib"),
]

ME = "/api/v1/me"
SYSTEM = "/api/v1/org-billing/billing/system"
INTERVAL = 1  # seconds between re-checks in these tests


def ended(username):
    return list(
        AuditEvent.objects.filter(action="auth.session_ended", target_id=username).values_list(
            "metadata__reason", flat=True
        )
    )


def wait_for_the_interval():
    time.sleep(INTERVAL + 0.1)


def unreachable_url():
    """A loopback port nobody listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/token"


@pytest.fixture
def recheck(settings, keycloak):
    settings.OIDC_SESSION_RECHECK_SECONDS = INTERVAL
    settings.OIDC_SESSION_RECHECK_GRACE_SECONDS = 600
    settings.OIDC_SESSION_RECHECK_RETRY_SECONDS = 0
    return keycloak


def signed_in(client, keycloak, claims=None):
    sub = new_sub()
    keycloak.set_user(sub, {"email": f"{sub}@example.test", **(claims or {})})
    response = keycloak.browser_sign_in(client, sub)
    assert response.status_code == 302
    assert client.get(ME).status_code == 200
    return sub


# Re-checks against the provider -----------------------------------------------------------------


def test_the_sign_in_keeps_the_refresh_token_server_side(client, recheck, settings):
    signed_in(client, recheck)

    assert client.session["oidc_refresh_token"]
    assert client.cookies[settings.SESSION_COOKIE_NAME].value == client.session.session_key  # only the key


def test_a_user_disabled_in_the_provider_loses_the_session_within_the_interval(client, recheck):
    # given: a signed-in browser
    sub = signed_in(client, recheck)
    # when: the user is disabled in the provider and the interval passes
    recheck.disable_user(sub)
    wait_for_the_interval()

    # then: the next request finds the session ended, in the API's error shape
    assert_error(client.get(ME), 401, "unauthenticated")
    assert_error(client.get(ME), 401, "unauthenticated")  # and it stays ended
    assert ended(sub) == ["provider_refused"]


def test_the_provider_is_not_asked_again_before_the_interval_passes(client, recheck, settings):
    settings.OIDC_SESSION_RECHECK_SECONDS = 3600
    sub = signed_in(client, recheck)

    recheck.disable_user(sub)

    assert client.get(ME).status_code == 200
    assert ended(sub) == []


def test_a_session_that_passes_the_re_check_goes_on(client, recheck):
    sub = signed_in(client, recheck)
    checked_at = client.session["oidc_checked_at"]
    wait_for_the_interval()

    assert client.get(ME).status_code == 200
    assert client.session["oidc_checked_at"] > checked_at
    wait_for_the_interval()
    assert client.get(ME).status_code == 200  # the refresh token still works after a refresh
    assert ended(sub) == []


def test_a_removed_admin_role_is_revoked_within_the_interval(client, recheck):
    # given: a system admin by their realm role, signed in to the API and the admin site
    sub = signed_in(client, recheck, {"realm_access": {"roles": [STAFF_ROLE]}})
    assert client.get(SYSTEM).status_code == 200
    assert client.get("/admin/").status_code == 200
    # when: the role is removed in the provider and the interval passes
    recheck.set_user(sub, {"email": f"{sub}@example.test", "realm_access": {"roles": ["other"]}})
    wait_for_the_interval()

    # then: no more admin, at the very next request; still signed in as a user
    assert_error(client.get(SYSTEM), 403, "forbidden")
    admin = client.get("/admin/")
    assert admin.status_code == 302 and admin["Location"].startswith("/admin/login/")
    assert client.get(ME).json()["user"]["is_system_admin"] is False
    assert not User.objects.get(username=sub).is_staff
    revoked = AuditEvent.objects.get(action="auth.role_revoked", target_id=sub)
    assert revoked.metadata["via"] == "oidc-refresh"


def test_an_unreachable_provider_is_tolerated_for_the_grace_period_only(client, recheck, settings):
    # given: a signed-in browser, and the provider's token endpoint down
    sub = signed_in(client, recheck)
    settings.OIDC_OP_TOKEN_ENDPOINT = unreachable_url()
    wait_for_the_interval()

    # when: within the grace period, the session goes on (fail open, briefly)
    assert client.get(ME).status_code == 200
    assert ended(sub) == []

    # when: the grace period is over, it ends (fail closed)
    settings.OIDC_SESSION_RECHECK_GRACE_SECONDS = 0
    assert_error(client.get(ME), 401, "unauthenticated")
    assert ended(sub) == ["provider_unreachable"]


def test_an_sso_session_without_a_refresh_token_ends_at_the_re_check(client, recheck):
    sub = signed_in(client, recheck)
    session = client.session
    del session["oidc_refresh_token"]
    session.save()
    wait_for_the_interval()

    assert_error(client.get(ME), 401, "unauthenticated")
    assert ended(sub) == ["no_refresh_token"]


# The staff session cap --------------------------------------------------------------------------


def _password_user(**fields):
    user = UserFactory(**fields)
    user.set_password("a-long-local-password")
    user.save()
    return user


def test_a_staff_password_session_ends_at_the_cap_however_active(client, settings):
    settings.OIDC_ENABLED = False
    settings.STAFF_SESSION_MAX_SECONDS = 2
    staff = _password_user(is_staff=True)
    assert client.login(username=staff.username, password="a-long-local-password")
    assert client.session.get_expiry_age() == 2  # the session store's expiry, too

    for _ in range(3):  # activity does not extend it
        assert client.get(ME).status_code == 200
        time.sleep(0.4)
    time.sleep(0.9)

    assert_error(client.get(ME), 401, "unauthenticated")


def test_a_staff_session_kept_fresh_by_re_checks_still_ends_at_the_cap(client, recheck, settings):
    # given: a staff SSO session whose re-checks save the session (which pushes the session
    # store's own expiry on), capped at 2 s
    settings.STAFF_SESSION_MAX_SECONDS = 2
    sub = signed_in(client, recheck, {"realm_access": {"roles": [STAFF_ROLE]}})
    wait_for_the_interval()
    assert client.get(ME).status_code == 200  # re-checked, the session saved
    # when: the cap passes
    wait_for_the_interval()

    # then
    assert_error(client.get(ME), 401, "unauthenticated")
    assert ended(sub) == ["staff_session_expired"]


def test_under_asgi_a_staff_session_past_the_cap_ends_too(
    gateway_server,  # noqa: F811 (the fixture imported above)
    transactional_db,
    client,
    settings,
):
    # given: a staff session signed in 10 s ago, its cookie good for an hour; the app served by
    # uvicorn (the middleware runs on the event loop, the policy on a thread)
    settings.STAFF_SESSION_MAX_SECONDS = 5
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    session = client.session
    session["auth_signed_in_at"] = time.time() - 10
    session.set_expiry(3600)
    session.save()
    cookies = {settings.SESSION_COOKIE_NAME: session.session_key}

    # when
    response = httpx.get(f"{gateway_server.url}{ME}", cookies=cookies, timeout=10)

    # then
    assert response.status_code == 401, response.text
    assert ended(staff.username) == ["staff_session_expired"]


def test_a_non_staff_session_is_not_capped(client, settings):
    settings.OIDC_ENABLED = False
    settings.STAFF_SESSION_MAX_SECONDS = 1
    user = _password_user()
    assert client.login(username=user.username, password="a-long-local-password")
    time.sleep(1.1)

    assert client.get(ME).status_code == 200


def test_the_staff_cap_defaults_to_eight_hours(settings):
    assert settings.STAFF_SESSION_MAX_SECONDS == 8 * 3600
    assert settings.OIDC_SESSION_RECHECK_SECONDS + settings.OIDC_SESSION_RECHECK_GRACE_SECONDS <= 15 * 60
