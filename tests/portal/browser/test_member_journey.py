"""A member's journey through the portal in Debian's chromium: sign in, see credits and the
chart, switch the default org, create and revoke an API key; each page checked by axe-core,
readable at phone width, free of CSP violations, and photographed."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from billing.models import CreditUsageAttribution
from billing.services import add_credits_to_pool, allocate_credits_to_user, deduct_credits
from organizations.models import ApiKey, OrganizationMember
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc
from tests.portal.browser.conftest import DESKTOP, PHONE, axe_violations

PASSWORD = "a-long-portal-password"


@pytest.fixture
def mia(transactional_db):
    """A member of two orgs, paid by acme by default, with a few days of usage in both."""
    user = UserFactory(username="mia", first_name="Mia", last_name="Member")
    user.set_password(PASSWORD)
    user.save()
    for org_id, name, allocation in (("acme", "Acme Corp", "1500"), ("globex", "Globex", "800")):
        OrganizationFactory(id=org_id, org_name=name)
        add_credits_to_pool(org_id=org_id, amount=mc(10_000), actor_label="test")
        add_member(org_id=org_id, user=user, is_default=org_id == "acme", actor_label="test")
        allocate_credits_to_user(org_id=org_id, user=user, amount=mc(allocation), actor_label="test")
    now = timezone.now()
    for n, (org_id, model, credits, days_ago) in enumerate(
        [
            ("acme", "gpt-4o-mini", "12.5", 1),
            ("acme", "claude-3-5-sonnet", "40", 3),
            ("globex", "gpt-4o-mini", "7", 0),
        ]
    ):
        deduct_credits(user=user, org_id=org_id, amount=mc(credits), request_id=f"r{n}", service_name=model)
        CreditUsageAttribution.objects.filter(request_id=f"r{n}").update(
            created_at=now - timedelta(days=days_ago)
        )
    return user


def _watch_csp(page: Page) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return violations


def _wider_than_the_screen(page: Page) -> list[str]:
    """Elements sticking out to the right of the viewport (scrolling tables scroll inside
    their own box and stick out of nothing)."""
    return page.evaluate(
        """() => [...document.querySelectorAll("body *")]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .filter(e => !e.parentElement.closest(".table-wrap"))
            .map(e => e.tagName + (e.id ? "#" + e.id : "") + "." + e.className)"""
    )


def test_a_member_signs_in_sees_credits_switches_default_and_manages_a_key(
    page: Page, live_server, mia, artifacts
) -> None:
    csp_violations = _watch_csp(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)

    # Sign in at / with the development form.
    page.goto(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Sign in to orgbilling")).to_be_visible()
    assert axe_violations(page) == []
    page.screenshot(path=artifacts / "signin.png", full_page=True)
    page.get_by_label("Username").fill("mia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # My credits: both orgs in credits, and the chart drawn from the page's own data.
    expect(page).to_have_url(f"{live_server.url}/portal/")
    expect(page.get_by_role("heading", name="My credits", level=1)).to_be_visible()
    acme = page.locator('tr[data-org-id="acme"]')
    expect(acme).to_contain_text("Acme Corp")
    expect(acme).to_contain_text("1,500")
    expect(acme).to_contain_text("1,447.5")  # 1,500 − 12.5 − 40
    expect(acme).to_contain_text("pays by default")
    expect(page.locator("#usage-chart")).to_have_attribute("data-chart-ready", "2")  # two models
    expect(page.locator("#usage-total")).to_contain_text("59.5 credits in 3 requests")
    expect(page.locator("#usage-total")).to_contain_text("days in Europe/Paris")  # the browser's zone
    assert axe_violations(page) == []
    page.screenshot(path=artifacts / "my-credits.png", full_page=True)

    # Readable on a phone: nothing wider than the screen.
    page.set_viewport_size(PHONE)
    # The chart follows the new width on its next resize callback. Polled from here: Playwright's
    # wait_for_function evaluates its predicate with eval() in the page, which the CSP forbids.
    chart_fits = "() => document.querySelector('#usage-chart').getBoundingClientRect().right <= innerWidth"
    for _ in range(50):
        if page.evaluate(chart_fits):
            break
        page.wait_for_timeout(100)
    assert _wider_than_the_screen(page) == []
    page.screenshot(path=artifacts / "my-credits-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)

    # Switch the default org: the API agrees.
    page.get_by_label("Organization that pays by default").select_option("globex")
    page.get_by_role("button", name="Save default").click()
    expect(page.get_by_role("status")).to_contain_text("Your default organization is saved")
    expect(page.locator('tr[data-org-id="globex"]')).to_contain_text("pays by default")
    assert page.request.get(f"{live_server.url}/api/v1/me").json()["default_org_id"] == "globex"
    assert OrganizationMember.objects.get(user=mia, is_default=True).org_id == "globex"

    # Create a key: shown once, copied, and it works against the API.
    page.get_by_label("Name").fill("notebook")
    page.get_by_role("button", name="Create key").click()
    raw_key = page.get_by_label("New API key").input_value()
    assert raw_key.startswith("obk_")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator(".copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == raw_key
    page.screenshot(path=artifacts / "my-credits-new-key.png", full_page=True)
    with_key = {"Authorization": f"Bearer {raw_key}"}
    assert (
        page.request.get(f"{live_server.url}/api/v1/org-billing/billing/user", headers=with_key).status == 200
    )

    # Revoke it: gone for good.
    page.get_by_role("button", name="Revoke the key notebook").click()
    expect(page.get_by_role("status")).to_contain_text("API key revoked")
    expect(page.locator("#new-key")).to_have_count(0)
    assert ApiKey.objects.get(user=mia).revoked_at is not None
    refused = page.request.get(
        f"{live_server.url}/api/v1/org-billing/billing/user",
        headers={**with_key, "Cookie": ""},
    )
    assert refused.status == 401

    assert csp_violations == []


def test_a_refused_action_shows_the_api_message_next_to_the_field(page: Page, live_server, mia) -> None:
    page.goto(f"{live_server.url}/")
    page.get_by_label("Username").fill("mia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("button", name="Create key").click()  # no name

    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description("This field may not be blank.")
    assert not ApiKey.objects.exists()


def test_an_unknown_page_is_the_portal_404_page(page: Page, live_server, mia) -> None:
    response = page.goto(f"{live_server.url}/portal/nowhere/")

    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    assert axe_violations(page) == []
