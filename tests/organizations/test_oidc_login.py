"""Browser sign-in through a real OIDC provider (tests/oidc_provider.py): redirect → provider
login form → callback → Django session → /api/v1/me; logout; the staff role; passwords."""

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from billing.models import AuditEvent
from organizations.models import OrganizationMember, User
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error
from tests.oidc_provider import CALLBACK_URL, CLIENT_ID, STAFF_ROLE, new_sub

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib"),
]

ME = "/api/v1/me"
SYSTEM = "/api/v1/org-billing/billing/system"


def start_sign_in(client, path="/oidc/authenticate/"):
    response = client.get(path)
    assert response.status_code == 302, response.content[:300]
    return response["Location"]


def browser_sign_in(client, provider, sub, path="/oidc/authenticate/"):
    """The whole round trip; returns the callback's response (Django's own redirect)."""
    callback = provider.authorize(start_sign_in(client, path), sub)
    parts = urlsplit(callback)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK_URL
    return client.get(f"{parts.path}?{parts.query}")


def audit(action, username):
    return list(AuditEvent.objects.filter(action=action, target_id=username).order_by("id"))


# The sign-in round trip -------------------------------------------------------------------------


def test_sign_in_redirects_to_the_provider_with_pkce_nonce_and_state(client, keycloak):
    location = start_sign_in(client)

    url = urlsplit(location)
    assert f"{url.scheme}://{url.netloc}{url.path}" == keycloak.endpoint("authorization_endpoint")
    params = {name: values[0] for name, values in parse_qs(url.query).items()}
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == CALLBACK_URL
    assert set(params["scope"].split()) >= {"openid", "email", "profile"}
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["state"] and params["nonce"]


def test_full_sign_in_creates_the_user_from_claims_and_opens_a_session(client, keycloak):
    sub = new_sub()
    keycloak.set_user(
        sub,
        {"email": "ada@example.test", "email_verified": True, "given_name": "Ada", "family_name": "Lovelace"},
    )

    response = browser_sign_in(client, keycloak, sub)

    assert response.status_code == 302
    assert response["Location"] == "/portal/"  # LOGIN_REDIRECT_URL: the portal, not JSON
    me = client.get(ME)
    assert me.status_code == 200, me.content
    assert me.json()["user"] == {
        "user_id": sub,
        "email": "ada@example.test",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "is_system_admin": False,
    }
    user = User.objects.get(username=sub)
    assert not user.has_usable_password()
    assert client.session["oidc_id_token"].count(".") == 2
    [sign_in] = audit("auth.sign_in", sub)
    assert sign_in.actor == user
    assert sign_in.metadata == {"method": "oidc"}
    assert sign_in.ip_address == "127.0.0.1"
    assert len(audit("auth.user_created", sub)) == 1
    assert audit("auth.role_granted", sub) == []


def test_sign_in_returns_to_the_safe_next_url(client, keycloak):
    response = browser_sign_in(client, keycloak, new_sub(), path="/oidc/authenticate/?next=/api/v1/keys")

    assert response.status_code == 302
    assert response["Location"] == "/api/v1/keys"


def test_signing_in_again_updates_the_same_user_from_the_new_claims(client, keycloak, django_user_model):
    sub = new_sub()
    keycloak.set_user(sub, {"email": "old@example.test", "email_verified": True, "given_name": "Old"})
    browser_sign_in(client, keycloak, sub)
    client.logout()
    keycloak.set_user(
        sub, {"email": "new@example.test", "email_verified": True, "given_name": "New", "family_name": "Name"}
    )

    browser_sign_in(client, keycloak, sub)

    assert django_user_model.objects.filter(username=sub).count() == 1
    assert client.get(ME).json()["user"]["email"] == "new@example.test"
    user = User.objects.get(username=sub)
    assert (user.first_name, user.last_name) == ("New", "Name")
    assert len(audit("auth.sign_in", sub)) == 2
    assert len(audit("auth.user_created", sub)) == 1


def test_a_denied_consent_leaves_the_browser_signed_out(client, keycloak):
    authorize_url = start_sign_in(client)
    denied = requests.post(authorize_url, data={"action": "deny"}, allow_redirects=False, timeout=5)
    parts = urlsplit(denied.headers["Location"])
    assert parse_qs(parts.query)["error"] == ["access_denied"]

    response = client.get(f"{parts.path}?{parts.query}")

    assert response.status_code == 302
    assert response["Location"] == "/"  # LOGIN_REDIRECT_URL_FAILURE: the sign-in page
    assert_error(client.get(ME), 401, "unauthenticated")


def test_a_forged_authorization_code_signs_nobody_in(client, keycloak):
    callback = urlsplit(keycloak.authorize(start_sign_in(client), new_sub()))
    state = parse_qs(callback.query)["state"][0]

    response = client.get(callback.path, {"code": "forged-code", "state": state})

    assert response.status_code == 302  # the provider refused the code: a failed sign-in, not a 500
    assert_error(client.get(ME), 401, "unauthenticated")


def test_an_id_token_minted_for_another_login_attempt_is_refused(client, keycloak):
    # A code obtained with some other nonce (an injected or replayed code) does not match the
    # nonce this browser's session is waiting for.
    url = urlsplit(start_sign_in(client))
    params = {name: values[0] for name, values in parse_qs(url.query).items()}
    params["nonce"] = "attacker-nonce"
    callback = urlsplit(keycloak.authorize(url._replace(query=urlencode(params)).geturl(), new_sub()))

    response = client.get(f"{callback.path}?{callback.query}")

    assert response.status_code == 302
    assert_error(client.get(ME), 401, "unauthenticated")


def test_an_id_token_from_another_issuer_is_refused(client, keycloak, settings):
    sub = new_sub()
    settings.OIDC_ISSUER = "https://keycloak.example.com/realms/other"

    browser_sign_in(client, keycloak, sub)

    assert_error(client.get(ME), 401, "unauthenticated")
    assert not User.objects.filter(username=sub).exists()


def test_a_deactivated_user_cannot_sign_in(client, keycloak):
    sub = new_sub()
    UserFactory(username=sub, is_active=False)

    browser_sign_in(client, keycloak, sub)

    assert_error(client.get(ME), 401, "unauthenticated")
    assert audit("auth.sign_in", sub) == []


def test_sso_pages_are_not_found_while_oidc_is_not_configured(client, settings):
    settings.OIDC_ENABLED = False

    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/", {"code": "c", "state": "s"}).status_code == 404


# Logout -----------------------------------------------------------------------------------------


def test_logout_ends_the_session_and_goes_through_the_provider_end_session(client, keycloak):
    browser_sign_in(client, keycloak, new_sub())
    id_token = client.session["oidc_id_token"]

    response = client.post("/oidc/logout/")

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == keycloak.endpoint(
        "end_session_endpoint"
    )
    params = parse_qs(location.query)
    assert params["id_token_hint"] == [id_token]
    assert params["post_logout_redirect_uri"] == ["http://testserver/"]
    assert params["client_id"] == [CLIENT_ID]
    assert_error(client.get(ME), 401, "unauthenticated")
    # The provider's end-session page confirms and sends the browser back to us.
    page = requests.get(response["Location"], timeout=5)
    assert page.status_code == 200
    confirm = requests.post(
        f"{keycloak.base_url}/oauth2/end_session/confirm",
        data={"redirect_uri": "http://testserver/api/v1/me"},
        allow_redirects=False,
        timeout=5,
    )
    assert confirm.headers["Location"] == "http://testserver/api/v1/me"


def test_logout_needs_a_post(client, keycloak):
    browser_sign_in(client, keycloak, new_sub())

    assert client.get("/oidc/logout/").status_code == 405
    assert client.get(ME).status_code == 200


def test_logout_after_a_password_sign_in_stays_local(client, keycloak):
    staff = UserFactory(is_staff=True)
    staff.set_password("a-long-staff-password")
    staff.save()
    assert client.login(username=staff.username, password="a-long-staff-password")

    response = client.post("/oidc/logout/")

    assert response["Location"] == "http://testserver/"  # LOGOUT_REDIRECT_URL: the sign-in page
    assert_error(client.get(ME), 401, "unauthenticated")


# The system-admin role --------------------------------------------------------------------------


def test_the_staff_realm_role_makes_a_system_admin(client, keycloak):
    sub = new_sub()
    keycloak.set_user(sub, {"email": f"{sub}@example.test", "realm_access": {"roles": [STAFF_ROLE, "other"]}})

    browser_sign_in(client, keycloak, sub)

    assert User.objects.get(username=sub).is_staff
    assert client.get(ME).json()["user"]["is_system_admin"] is True
    assert client.get(SYSTEM).status_code == 200
    [granted] = audit("auth.role_granted", sub)
    assert granted.metadata == {"role": STAFF_ROLE, "flag": "is_staff", "via": "oidc"}


def test_the_staff_group_also_makes_a_system_admin(client, keycloak):
    sub = new_sub()
    keycloak.set_user(sub, {"email": f"{sub}@example.test", "groups": [f"/{STAFF_ROLE}"]})

    browser_sign_in(client, keycloak, sub)

    assert User.objects.get(username=sub).is_staff


def test_a_removed_role_claim_revokes_system_admin_at_the_next_sign_in(client, keycloak):
    # given: a system admin by their realm role
    sub = new_sub()
    keycloak.set_user(sub, {"email": f"{sub}@example.test", "realm_access": {"roles": [STAFF_ROLE]}})
    browser_sign_in(client, keycloak, sub)
    assert client.get(SYSTEM).status_code == 200
    client.post("/oidc/logout/")
    # when: the role is removed in the provider and they sign in again
    keycloak.set_user(sub, {"email": f"{sub}@example.test", "realm_access": {"roles": ["other"]}})
    browser_sign_in(client, keycloak, sub)

    # then
    assert not User.objects.get(username=sub).is_staff
    assert_error(client.get(SYSTEM), 403, "forbidden")
    [revoked] = audit("auth.role_revoked", sub)
    assert revoked.metadata["role"] == STAFF_ROLE
    assert len(audit("auth.role_granted", sub)) == 1


def test_the_staff_role_name_is_configurable(client, keycloak, settings):
    settings.OIDC_STAFF_ROLE = "billing-ops"
    sub = new_sub()
    keycloak.set_user(sub, {"email": f"{sub}@example.test", "realm_access": {"roles": [STAFF_ROLE]}})

    browser_sign_in(client, keycloak, sub)

    assert not User.objects.get(username=sub).is_staff


# Org memberships from groups (optional) -----------------------------------------------------------


def test_org_groups_sync_adds_memberships_and_aligns_roles_when_enabled(client, keycloak, settings):
    settings.OIDC_ORG_GROUPS_SYNC = True
    OrganizationFactory(id="acme", created_by=UserFactory())  # acme keeps its own admin
    sub = new_sub()
    keycloak.set_user(
        sub, {"email": f"{sub}@example.test", "groups": ["/orgs/acme/admin", "/orgs/ghost/member"]}
    )

    browser_sign_in(client, keycloak, sub)

    member = OrganizationMember.objects.get(org_id="acme", user__username=sub)
    assert member.role == "admin"
    assert not OrganizationMember.objects.filter(org_id="ghost").exists()  # unknown org: skipped
    assert AuditEvent.objects.filter(action="member.added", org_id="acme", target_id=sub).exists()

    client.post("/oidc/logout/")
    keycloak.set_user(sub, {"email": f"{sub}@example.test", "groups": ["/orgs/acme/member"]})
    browser_sign_in(client, keycloak, sub)

    member.refresh_from_db()
    assert member.role == "member"


def test_org_groups_are_ignored_when_sync_is_off(client, keycloak):
    OrganizationFactory(id="acme")
    sub = new_sub()
    keycloak.set_user(sub, {"email": f"{sub}@example.test", "groups": ["/orgs/acme/admin"]})

    browser_sign_in(client, keycloak, sub)

    assert not OrganizationMember.objects.filter(org_id="acme", user__username=sub).exists()


def test_org_groups_sync_keeps_the_last_admin(client, keycloak, settings):
    settings.OIDC_ORG_GROUPS_SYNC = True
    sub = new_sub()
    user = UserFactory(username=sub)
    OrganizationFactory(id="solo", created_by=user)  # the user is the org's only admin
    keycloak.set_user(sub, {"email": f"{sub}@example.test", "groups": ["/orgs/solo/member"]})

    response = browser_sign_in(client, keycloak, sub)

    assert response["Location"] == "/portal/"
    assert client.get(ME).status_code == 200  # signed in; the refused demotion is skipped
    assert OrganizationMember.objects.get(org_id="solo", user=user).role == "admin"


# Local passwords --------------------------------------------------------------------------------


def _with_password(user, password="a-long-local-password"):
    user.set_password(password)
    user.save()
    return user


def test_password_sign_in_is_refused_for_non_staff_when_oidc_is_configured(client, keycloak):
    user = _with_password(UserFactory())

    assert not client.login(username=user.username, password="a-long-local-password")
    response = client.post(
        "/api-auth/login/", {"username": user.username, "password": "a-long-local-password", "next": ME}
    )
    assert response.status_code == 200  # the form again, with an error
    assert_error(client.get(ME), 401, "unauthenticated")


def test_password_sign_in_stays_open_to_staff_when_oidc_is_configured(client, keycloak):
    staff = _with_password(UserFactory(is_staff=True))

    response = client.post(
        "/api-auth/login/", {"username": staff.username, "password": "a-long-local-password", "next": ME}
    )

    assert response.status_code == 302
    assert client.get(ME).json()["user"]["user_id"] == staff.username


def test_password_sign_in_works_for_everyone_without_oidc(client, settings):
    settings.OIDC_ENABLED = False
    user = _with_password(UserFactory())

    assert client.login(username=user.username, password="a-long-local-password")
    assert client.get(ME).status_code == 200


def test_existing_memberships_show_after_sso_sign_in(client, keycloak):
    sub = new_sub()
    user = UserFactory(username=sub)
    add_member(org_id=OrganizationFactory(id="beta").id, user=user)

    browser_sign_in(client, keycloak, sub)

    assert [org["org_id"] for org in client.get(ME).json()["organizations"]] == ["beta"]
