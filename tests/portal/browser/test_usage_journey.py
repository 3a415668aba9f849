"""An org admin's usage journey in Debian's chromium: a call through the real gateway (the
gateway tests' uvicorn server and fake upstream) shows in the org's date-range charts and top
consumers after a reload; the admin invites a member by e-mail and removes another; the audit
log lists both. Pages checked by axe-core and photographed."""

import json
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from billing.models import CreditUsageAttribution
from billing.services import add_credits_to_pool, allocate_credits_to_user
from organizations.models import OrganizationMember
from organizations.services import add_member
from tests.billing.gateway.conftest import api_key, chat, openai_client
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc
from tests.portal.browser.conftest import DESKTOP, PHONE, axe_violations, sign_in
from tests.portal.browser.test_member_journey import _wider_than_the_screen

PASSWORD = "a-long-portal-password"


@pytest.fixture
def acme(transactional_db):
    people = {}
    for username in ("boss", "mia", "noah"):
        user = UserFactory(username=username, first_name=username.title())
        user.set_password(PASSWORD)
        user.save()
        people[username] = user
    OrganizationFactory(id="acme", org_name="Acme Corp", created_by=people["boss"])
    add_credits_to_pool(org_id="acme", amount=mc(1_000), actor_label="test")
    for username in ("mia", "noah"):
        add_member(org_id="acme", user=people[username], actor_label="test")
        allocate_credits_to_user(org_id="acme", user=people[username], amount=mc(100), actor_label="test")
    return people


def _range_total(page: Page) -> Decimal:
    data = json.loads(page.locator("#range-day-data").text_content() or "{}")
    return sum((Decimal(str(v)) for v in data["series"][0]["data"]), Decimal(0))


def test_a_gateway_call_shows_in_the_range_charts_and_the_admin_invites_and_removes(
    page: Page, live_server, acme, gateway, model_price, artifacts
) -> None:
    sign_in(page, live_server.url, "boss", PASSWORD)
    page.get_by_role("link", name="Acme Corp").click()
    today = page.evaluate("() => new Date().toLocaleDateString('en-CA')")  # the browser's local day
    page.locator("#usage-range").get_by_label("From").fill(today)
    page.locator("#usage-range").get_by_label("Until (inclusive)").fill(today)
    page.get_by_role("button", name="Show usage").click()
    expect(page.locator("#range-day-chart")).to_have_attribute("data-chart-ready", "1")
    before = _range_total(page)
    expect(page.locator("#top-consumers")).to_contain_text("No usage.")

    # mia calls the model through the real gateway with her own API key.
    chat(openai_client(gateway, api_key(acme["mia"])), "four words of prompt", max_tokens=50)
    charged = CreditUsageAttribution.objects.get(user=acme["mia"]).credits_used
    assert charged > 0

    page.reload()
    expect(page.locator("#range-member-chart")).to_have_attribute("data-chart-ready", "1")
    assert _range_total(page) - before == Decimal(charged) / 1000
    expect(page.locator("#top-consumers")).to_contain_text("mia")
    assert json.loads(page.locator("#range-member-data").text_content() or "{}")["labels"] == ["mia"]
    assert axe_violations(page) == []
    page.locator("#usage-range").screenshot(path=artifacts / "org-usage-range.png")

    # Invite by e-mail, then remove noah: the API's services, the page's messages.
    page.get_by_label("E-mail", exact=True).fill("new.person@example.com")
    page.get_by_role("button", name="Invite", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("new.person@example.com is invited")
    page.locator("#manage-members").get_by_label("Member").last.select_option("noah")
    page.get_by_role("button", name="Remove", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("noah is removed")
    expect(page.locator('tr[data-user-id="noah"]')).to_have_count(0)
    assert not OrganizationMember.objects.filter(org_id="acme", user__username="noah").exists()
    page.locator("#manage-members").screenshot(path=artifacts / "org-manage-members.png")

    # The audit log has both.
    page.get_by_role("link", name="The audit log").click()
    expect(page.get_by_role("heading", name="Audit log of Acme Corp")).to_be_visible()
    expect(page.locator("#audit")).to_contain_text("member.removed")
    assert axe_violations(page) == []
    page.screenshot(path=artifacts / "org-audit.png", full_page=True)

    # The org page on a phone: nothing wider than the screen once the charts follow the width.
    page.go_back()
    page.set_viewport_size(PHONE)
    fits = "() => document.querySelector('#range-model-chart').getBoundingClientRect().right <= innerWidth"
    for _ in range(50):
        if page.evaluate(fits):
            break
        page.wait_for_timeout(100)
    assert _wider_than_the_screen(page) == []
    page.set_viewport_size(DESKTOP)
