"""Every paginated list caps ``page_size`` at 500 and refuses more (or a non-number) with 400,
in the one error shape; the schema documents the cap."""

import pytest
from django.urls import reverse

from billing.services import add_credits_to_pool
from organizations.services import add_member, create_organization
from orgbilling.api.pagination import MAX_PAGE_SIZE
from tests.factories import UserFactory
from tests.helpers import assert_error, mc

pytestmark = pytest.mark.django_db

LISTS = [
    ("api-org-members", True),
    ("api-org-keys", True),
    ("api-keys", False),
    ("org-billing-allocations", True),
    ("org-billing-history", True),
    ("org-billing-usage-by-user", True),
    ("org-billing-usage-by-model", True),
]


@pytest.fixture
def admin_client(api_client):
    admin = UserFactory()
    create_organization(org_id="paged-org", org_name="Paged", created_by=admin)
    add_member(org_id="paged-org", user=UserFactory())
    add_credits_to_pool(org_id="paged-org", amount=mc(100))
    api_client.force_login(admin)
    return api_client


def _url(name: str, with_org: bool) -> str:
    return reverse(name, args=["paged-org"]) if with_org else reverse(name)


@pytest.mark.parametrize(("name", "with_org"), LISTS)
def test_the_largest_page_is_served(admin_client, name, with_org):
    response = admin_client.get(_url(name, with_org), {"page_size": MAX_PAGE_SIZE})
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(("name", "with_org"), LISTS)
@pytest.mark.parametrize("page_size", [str(MAX_PAGE_SIZE + 1), "1000000", "0", "-1", "x", "", "1e3"])
def test_a_page_size_over_the_cap_or_not_a_number_is_refused(admin_client, name, with_org, page_size):
    response = admin_client.get(_url(name, with_org), {"page_size": page_size})
    error = assert_error(response, 400, "validation_error")
    assert "page_size" in error["details"]["fields"]


@pytest.mark.parametrize(("name", "with_org"), LISTS)
@pytest.mark.parametrize("page", ["0", "x", "last"])
def test_a_page_that_is_not_a_positive_number_is_refused(admin_client, name, with_org, page):
    response = admin_client.get(_url(name, with_org), {"page": page})
    error = assert_error(response, 400, "validation_error")
    assert "page" in error["details"]["fields"]


@pytest.mark.parametrize(("name", "with_org"), LISTS)
def test_a_page_past_the_end_is_not_found(admin_client, name, with_org):
    assert_error(admin_client.get(_url(name, with_org), {"page": "99"}), 404, "not_found")


def test_the_schema_documents_the_page_size_cap():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    page_sizes = [
        (path, parameter["schema"])
        for path, item in paths.items()
        for parameter in item.get("get", {}).get("parameters", [])
        if parameter["name"] == "page_size"
    ]
    assert len(page_sizes) >= len(LISTS)
    for path, schema in page_sizes:
        assert schema.get("maximum") == MAX_PAGE_SIZE, path
        assert schema.get("minimum") == 1, path
