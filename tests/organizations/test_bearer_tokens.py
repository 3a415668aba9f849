"""Keycloak access tokens as API bearer tokens, against a real OIDC provider
(tests/oidc_provider.py): its own opaque tokens (checked at userinfo) and JWTs signed with its
own key (verified locally against its JWKS, with key rotation)."""

import base64
import hashlib
import hmac
import json
import time
from unittest import mock

import pytest
from rest_framework.test import APIClient, APIRequestFactory

from billing.models import AuditEvent
from organizations.auth import oidc
from organizations.auth.bearer import BearerTokenAuthentication
from organizations.models import User
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import assert_error
from tests.oidc_provider import CLIENT_ID, STAFF_ROLE, new_rsa_key, new_sub

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib"),
]

ME = "/api/v1/me"
SYSTEM = "/api/v1/org-billing/billing/system"


def bearer(token: str) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_refused(response) -> dict:
    error = assert_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "sessionid" not in response.cookies
    return error


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# The provider's own (opaque) access tokens --------------------------------------------------------


def test_the_providers_access_token_opens_the_api_as_the_same_user(keycloak):
    sub = new_sub()
    keycloak.set_user(
        sub, {"email": "ada@example.test", "email_verified": True, "given_name": "Ada", "family_name": "L"}
    )
    tokens = keycloak.issue_tokens(sub)

    response = bearer(tokens["access_token"]).get(ME)

    assert response.status_code == 200, response.content
    assert response.json()["user"]["user_id"] == sub
    assert response.json()["user"]["email"] == "ada@example.test"
    assert User.objects.filter(username=sub).count() == 1
    assert AuditEvent.objects.filter(action="auth.user_created", target_id=sub).count() == 1
    assert not AuditEvent.objects.filter(action="auth.sign_in", target_id=sub).exists()


def test_bearer_callers_are_not_subject_to_csrf(keycloak):
    sub = new_sub()
    user = UserFactory(username=sub)
    add_member(org_id=OrganizationFactory(id="bearer-org").id, user=user)
    token = keycloak.issue_tokens(sub)["access_token"]

    response = bearer(token).put(f"{ME}/default-org", {"org_id": "bearer-org"}, format="json")

    assert response.status_code == 200, response.content


def test_an_unknown_opaque_token_is_refused(keycloak):
    error = assert_refused(bearer("not-a-token-the-provider-issued").get(ME))

    assert error["message"] == "The token is not valid."


def test_a_revoked_token_is_refused(keycloak):
    sub = new_sub()
    token = keycloak.issue_tokens(sub)["access_token"]

    keycloak.revoke_tokens(sub)

    assert_refused(bearer(token).get(ME))


def test_a_token_revoked_after_use_is_refused_once_the_cached_answer_expires(keycloak, settings):
    settings.OIDC_USERINFO_CACHE_SECONDS = 0
    sub = new_sub()
    token = keycloak.issue_tokens(sub)["access_token"]
    assert bearer(token).get(ME).status_code == 200

    keycloak.revoke_tokens(sub)

    assert_refused(bearer(token).get(ME))


def test_userinfo_answers_are_cached_briefly(keycloak):
    sub = new_sub()
    token = keycloak.issue_tokens(sub)["access_token"]
    with mock.patch.object(oidc.requests, "get", wraps=oidc.requests.get) as get:
        assert bearer(token).get(ME).status_code == 200
        assert bearer(token).get(ME).status_code == 200

    assert get.call_count == 1  # the second request reused the answer (≤ 60 s)


def test_an_unreachable_provider_is_a_401_not_a_500(keycloak, settings):
    settings.OIDC_OP_USER_ENDPOINT = "http://127.0.0.1:9/userinfo"  # discard port: nothing listens

    assert_refused(bearer("some-opaque-token").get(ME))


def test_bearer_tokens_are_ignored_while_oidc_is_not_configured(keycloak, settings):
    token = keycloak.issue_tokens(new_sub())["access_token"]
    settings.OIDC_ENABLED = False

    assert_refused(bearer(token).get(ME))


# JWT access tokens signed with the provider's key -------------------------------------------------


def test_a_jwt_signed_with_the_providers_key_is_accepted(keycloak):
    sub = new_sub()
    token = keycloak.sign(sub=sub, email="grace@example.test", given_name="Grace")

    response = bearer(token).get(ME)

    assert response.status_code == 200, response.content
    assert response.json()["user"]["user_id"] == sub
    assert response.json()["user"]["first_name"] == "Grace"


def test_a_jwt_without_kid_is_tried_against_each_key_when_kid_is_not_required(keycloak):
    assert bearer(keycloak.sign(sub=new_sub(), kid=None)).get(ME).status_code == 200


def test_a_jwt_without_kid_is_refused_when_kid_is_required(keycloak, settings):
    settings.OIDC_VERIFY_KID = True

    assert_refused(bearer(keycloak.sign(sub=new_sub(), kid=None)).get(ME))
    assert bearer(keycloak.sign(sub=new_sub())).get(ME).status_code == 200


def test_an_expired_jwt_is_refused(keycloak):
    now = int(time.time())

    error = assert_refused(bearer(keycloak.sign(sub=new_sub(), iat=now - 600, exp=now - 60)).get(ME))

    assert error["message"] == "The token has expired."


def test_expiry_has_thirty_seconds_of_leeway(keycloak):
    now = int(time.time())

    assert bearer(keycloak.sign(sub=new_sub(), iat=now - 600, exp=now - 10)).get(ME).status_code == 200


def test_a_jwt_not_valid_yet_is_refused(keycloak):
    now = int(time.time())

    assert_refused(bearer(keycloak.sign(sub=new_sub(), nbf=now + 120, exp=now + 600)).get(ME))


def test_a_jwt_without_expiry_is_refused(keycloak):
    assert_refused(bearer(keycloak.sign(sub=new_sub(), exp=None)).get(ME))


def test_a_jwt_from_another_issuer_is_refused(keycloak):
    error = assert_refused(
        bearer(keycloak.sign(sub=new_sub(), iss="https://keycloak.example.com/realms/other")).get(ME)
    )

    assert error["message"] == "The token was issued by another provider."


def test_a_jwt_for_another_audience_is_refused(keycloak):
    token = keycloak.sign(sub=new_sub(), aud=["account", "another-api"], azp=CLIENT_ID)

    error = assert_refused(bearer(token).get(ME))

    assert error["message"] == "The token was not issued for this API."


def test_a_jwt_naming_this_api_as_its_only_audience_is_accepted(keycloak):
    assert bearer(keycloak.sign(sub=new_sub(), aud=CLIENT_ID)).get(ME).status_code == 200


def test_a_tampered_jwt_is_refused(keycloak):
    header, payload, signature = keycloak.sign(sub=new_sub()).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["realm_access"] = {"roles": [STAFF_ROLE]}  # promote oneself
    forged = f"{header}.{_b64(claims)}.{signature}"
    flipped = f"{header}.{payload}.{signature[:-6]}{'AAAAAA' if signature[-6:] != 'AAAAAA' else 'BBBBBB'}"

    assert assert_refused(bearer(forged).get(ME))["message"] == "The token's signature is not valid."
    assert_refused(bearer(flipped).get(ME))
    assert not User.objects.filter(is_staff=True).exists()


def test_a_jwt_signed_by_a_key_the_provider_does_not_publish_is_refused(keycloak):
    stranger = new_rsa_key()

    unknown_kid = keycloak.sign(sub=new_sub(), key=stranger, kid="not-in-the-jwks")
    stolen_kid = keycloak.sign(sub=new_sub(), key=stranger, kid=keycloak.signing_key.as_dict()["kid"])
    no_kid = keycloak.sign(sub=new_sub(), key=stranger, kid=None)

    assert (
        assert_refused(bearer(unknown_kid).get(ME))["message"] == "The token was signed with an unknown key."
    )
    assert_refused(bearer(stolen_kid).get(ME))
    assert_refused(bearer(no_kid).get(ME))


def test_unknown_key_ids_refetch_the_jwks_at_most_once_per_interval(keycloak, settings):
    settings.OIDC_JWKS_MIN_REFRESH_SECONDS = 300
    stranger = new_rsa_key()
    with mock.patch.object(oidc, "_fetch_jwks", wraps=oidc._fetch_jwks) as fetch:
        for n in range(5):
            assert_refused(bearer(keycloak.sign(sub=new_sub(), key=stranger, kid=f"forged-{n}")).get(ME))
        assert bearer(keycloak.sign(sub=new_sub())).get(ME).status_code == 200

    assert fetch.call_count == 1


def test_rotated_provider_keys_keep_working_without_a_restart(keycloak):
    # given: our cache holds the provider's current key
    old_key = keycloak.signing_key
    assert bearer(keycloak.sign(sub=new_sub())).get(ME).status_code == 200
    try:
        # when: the provider rotates to a new key (its /jwks now serves that one)
        new_key = new_rsa_key()
        keycloak.set_signing_key(new_key)
        assert new_key.as_dict()["kid"] != old_key.as_dict()["kid"]

        # then: tokens signed with the new key, with or without kid, are accepted
        assert bearer(keycloak.sign(sub=new_sub(), key=new_key)).get(ME).status_code == 200
        assert bearer(keycloak.sign(sub=new_sub(), key=new_key, kid=None)).get(ME).status_code == 200
    finally:
        keycloak.set_signing_key(old_key)


def test_alg_none_is_refused(keycloak):
    now = int(time.time())
    claims = {"iss": keycloak.issuer, "aud": CLIENT_ID, "sub": new_sub(), "exp": now + 300, "iat": now}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."

    error = assert_refused(bearer(unsigned).get(ME))

    assert error["message"] == "The token's signing algorithm is not accepted."


def test_hs256_signed_with_the_public_key_is_refused(keycloak):
    now = int(time.time())
    public_pem = keycloak.signing_key.as_pem(is_private=False)
    claims = {"iss": keycloak.issuer, "aud": CLIENT_ID, "sub": new_sub(), "exp": now + 300, "iat": now}
    header = {"alg": "HS256", "typ": "JWT", "kid": keycloak.signing_key.as_dict()["kid"]}
    # PyJWT refuses to HMAC with a PEM key, so build the token by hand as an attacker would.
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    assert_refused(bearer(token).get(ME))


def test_the_providers_id_token_is_not_an_access_token(keycloak):
    id_token = keycloak.issue_tokens(new_sub())["id_token"]

    error = assert_refused(bearer(id_token).get(ME))

    assert error["message"] == "This is not an access token."


def test_a_keycloak_refresh_or_id_typed_jwt_is_not_an_access_token(keycloak):
    assert_refused(bearer(keycloak.sign(sub=new_sub(), typ="ID")).get(ME))
    assert_refused(bearer(keycloak.sign(sub=new_sub(), typ="Refresh")).get(ME))


def test_malformed_authorization_headers_are_refused(keycloak):
    client = APIClient()
    assert_refused(client.get(ME, HTTP_AUTHORIZATION="Bearer"))
    assert_refused(client.get(ME, HTTP_AUTHORIZATION="Bearer two tokens"))
    assert_refused(client.get(ME, HTTP_AUTHORIZATION="Bearer not.a.jwt"))
    assert_refused(client.get(ME, HTTP_AUTHORIZATION="Bearer " + "a" * 20000))


# Users and roles from token claims ------------------------------------------------------------


def test_the_staff_role_in_a_token_makes_a_system_admin(keycloak):
    sub = new_sub()

    response = bearer(keycloak.sign(sub=sub, realm_access={"roles": [STAFF_ROLE]})).get(SYSTEM)

    assert response.status_code == 200, response.content
    granted = AuditEvent.objects.get(action="auth.role_granted", target_id=sub)
    assert granted.metadata["via"] == "bearer_token"


def test_a_token_without_the_role_revokes_system_admin(keycloak):
    sub = new_sub()
    UserFactory(username=sub, is_staff=True)

    assert_error(bearer(keycloak.sign(sub=sub, realm_access={"roles": []})).get(SYSTEM), 403, "forbidden")

    assert not User.objects.get(username=sub).is_staff
    assert AuditEvent.objects.filter(action="auth.role_revoked", target_id=sub).count() == 1


def test_repeated_requests_with_unchanged_claims_write_nothing(keycloak):
    token = keycloak.sign(sub=new_sub(), realm_access={"roles": [STAFF_ROLE]})
    assert bearer(token).get(ME).status_code == 200
    events = AuditEvent.objects.count()

    assert bearer(token).get(ME).status_code == 200

    assert AuditEvent.objects.count() == events


def test_a_deactivated_user_is_refused(keycloak):
    sub = new_sub()
    UserFactory(username=sub, is_active=False)

    assert assert_refused(bearer(keycloak.sign(sub=sub)).get(ME))["message"] == "This user is deactivated."


def test_a_token_without_sub_is_refused(keycloak):
    assert_refused(bearer(keycloak.sign(sub=None)).get(ME))


def test_api_keys_are_left_to_the_api_key_authentication(keycloak):
    request = APIRequestFactory().get(ME, HTTP_AUTHORIZATION="Bearer obk_abcdef0123456789")

    assert BearerTokenAuthentication().authenticate(request) is None


def test_bearer_authentication_names_its_scheme(keycloak):
    request = APIRequestFactory().get(ME)

    assert BearerTokenAuthentication().authenticate_header(request) == 'Bearer realm="orgbilling"'


def test_an_unverified_email_claim_is_never_stored(keycloak):
    # given: a user whose verified address we know
    sub = new_sub()
    keycloak.set_user(sub, {"email": "ada@example.test", "email_verified": True})
    assert bearer(keycloak.issue_tokens(sub)["access_token"]).get(ME).status_code == 200
    # when: the provider now sends another address it has not verified
    keycloak.set_user(sub, {"email": "mallory@example.test", "email_verified": False})
    response = bearer(keycloak.issue_tokens(sub)["access_token"]).get(ME)
    # then: the verified address stays; a new user with only an unverified one gets none
    assert response.json()["user"]["email"] == "ada@example.test"
    stranger = new_sub()
    keycloak.set_user(stranger, {"email": "ada@example.test"})
    assert bearer(keycloak.issue_tokens(stranger)["access_token"]).get(ME).json()["user"]["email"] == ""
