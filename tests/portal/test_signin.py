"""``/``: sign-in for visitors, the portal for people signed in; sign-out; the CSP header."""

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def person():
    user = UserFactory(username="ada", first_name="Ada")
    user.set_password("correct horse battery")
    user.save()
    return user


def test_a_visitor_gets_the_sign_in_form(client: Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    body = response.content.decode()
    assert '<label for="id_username">Username</label>' in body
    assert '<label for="id_password">Password</label>' in body
    assert "Sign in with Keycloak" not in body  # OIDC is not configured in the tests


def test_with_keycloak_configured_the_page_offers_single_sign_on(client: Client, settings) -> None:
    settings.OIDC_ENABLED = True

    body = client.get("/").content.decode()

    assert 'href="/oidc/authenticate/?next=/portal/"' in body
    assert 'name="password"' not in body


def test_signing_in_lands_on_the_portal(client: Client, person) -> None:
    response = client.post("/", {"username": "ada", "password": "correct horse battery"})

    assert response.status_code == 302
    assert response["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200


def test_a_wrong_password_is_refused_on_the_form(client: Client, person) -> None:
    response = client.post("/", {"username": "ada", "password": "wrong"})

    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert client.get("/portal/").status_code == 302


def test_someone_signed_in_goes_from_the_root_to_the_portal(client: Client, person) -> None:
    client.force_login(person)

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/portal/"


def test_the_portal_sends_visitors_to_sign_in(client: Client) -> None:
    response = client.get("/portal/")

    assert response.status_code == 302
    assert response["Location"] == "/?next=/portal/"


def test_signing_out_ends_the_session_and_returns_to_the_sign_in_page(client: Client, person) -> None:
    client.force_login(person)

    response = client.post("/oidc/logout/")

    assert response.status_code == 302
    assert response["Location"] == "http://testserver/"
    assert client.get("/portal/").status_code == 302


def test_pages_allow_only_our_own_origin(client: Client, person) -> None:
    client.force_login(person)

    policy = client.get("/portal/")["Content-Security-Policy"]

    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy


def test_the_page_carries_no_inline_script_and_no_outside_origin(client: Client, person) -> None:
    client.force_login(person)

    body = client.get("/portal/").content.decode()

    assert "<script>" not in body
    assert "http://" not in body.replace("http://testserver", "")
    assert "https://" not in body
    assert '<script src="/static/portal/vendor/chart.umd.min.js" defer></script>' in body
