"""The OpenAPI schema is valid, and the API honours it: schemathesis drives every operation
with generated requests (bounded), first valid ones (positive data), then invalid ones (negative
data), and checks for 5xx, responses that break the schema, invalid input that is accepted, and
errors outside the one error shape."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, settings
from pytest_httpserver import HTTPServer
from schemathesis import GenerationMode, checks

from billing.money import credits_to_millicredits
from billing.services import add_credits_to_pool, allocate_credits_to_user
from organizations.services import add_member, create_organization
from tests.factories import UserFactory
from tests.fakes import stripe as fake_stripe_module

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
schema.config.generation.update(modes=[GenerationMode.POSITIVE])
negative_schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
negative_schema.config.generation.update(modes=[GenerationMode.NEGATIVE])
# Unexpected methods (405) are the positive run's coverage already; skipping them here halves
# this run's time.
negative_schema.config.phases.coverage.unexpected_methods = set()

_HYPOTHESIS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)


@schemathesis.check
def errors_in_the_one_shape(ctx, response, case):
    """Every error answer, whatever the input, is ``{"error": {"code", "message", "details"}}``
    (DESIGN.md §6) with a string code and message and an object of details."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} is not JSON: {response.text[:200]!r}") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body!r}"[:300]
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, repr(body)[:300]
    assert isinstance(error["code"], str) and error["code"], repr(body)[:300]
    assert isinstance(error["message"], str), repr(body)[:300]
    assert isinstance(error["details"], dict), repr(body)[:300]
    return None


def test_generated_schema_is_valid_openapi():
    from drf_spectacular.generators import SchemaGenerator

    generated = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(generated)
    paths = generated["paths"]
    assert "/api/v1/org-billing/subscriptions" in paths
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("responses"), f"{method.upper()} {path} documents no responses"


@pytest.fixture(scope="module")
def _stripe_server():
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    fake_stripe_module.FakeStripe(server).install()
    yield server
    server.stop()


@pytest.fixture
def stripe_configured(_stripe_server, settings):
    """Card purchases (``/me/credits/purchase``) against the local Stripe stand-in: the endpoint
    answers what it answers in production, not 503 ``payments_not_configured``."""
    settings.STRIPE_SECRET_KEY = fake_stripe_module.SECRET_KEY
    settings.STRIPE_API_BASE = _stripe_server.url_for("/").rstrip("/")
    settings.STRIPE_CHECKOUT_SUCCESS_URL = "https://app.example.test/billing?checkout=success"
    settings.STRIPE_CHECKOUT_CANCEL_URL = "https://app.example.test/billing?checkout=canceled"


@pytest.fixture
def signed_in(transactional_db, stripe_configured):
    """Cookies and headers of a system admin's session, with a funded org to find.

    The WSGI app closes the database connection after each request (as in production), so the
    data must be committed: a transactional database, flushed after the test."""
    admin = UserFactory(username="schema-admin", is_staff=True)
    member = UserFactory(username="schema-member")
    create_organization(org_id="schema-org", org_name="Schema Org", created_by=admin)
    add_member(org_id="schema-org", user=member)
    add_credits_to_pool(org_id="schema-org", amount=credits_to_millicredits("1000"))
    allocate_credits_to_user(org_id="schema-org", user=member, amount=credits_to_millicredits("100"))
    client = Client()
    client.force_login(admin)
    csrf = _get_new_csrf_string()
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf}
    return cookies, {"X-CSRFToken": csrf}


@schema.parametrize()
@_HYPOTHESIS
def test_api_conforms_to_its_schema(case, signed_in):
    cookies, headers = signed_in
    # The bar: no 5xx, every status documented, every response matches its schema.
    # (Valid data may still be refused, so no positive_data_acceptance: rules such as "at most
    # 3 decimals" or "a known plan" cannot be expressed in JSON Schema; such a refusal must be
    # in the error shape, which errors_in_the_one_shape checks.)
    case.call_and_validate(
        cookies=cookies,
        headers=headers,
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
            errors_in_the_one_shape,
        ],
    )


@negative_schema.parametrize()
@_HYPOTHESIS
def test_api_refuses_what_its_schema_forbids(case, signed_in):
    cookies, headers = signed_in
    # Invalid input (wrong types, out-of-range numbers, missing or unknown fields, page sizes
    # over the cap...) is refused with a documented 4xx in the one error shape, never a 5xx.
    case.call_and_validate(
        cookies=cookies,
        headers=headers,
        checks=[
            checks.not_a_server_error,
            checks.negative_data_rejection,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
            errors_in_the_one_shape,
        ],
    )
