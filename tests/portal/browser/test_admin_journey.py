"""An org admin's journey in Debian's chromium: allocate with the labelled Credits input and the
Allocate button and see the API agree, transfer through the dialog; a member's view of the same
org; another org's page is the 404 page. Each page checked by axe-core and photographed."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from billing.models import UserCreditAllocation
from billing.services import add_credits_to_pool, allocate_credits_to_user, deduct_credits
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc
from tests.portal.browser.conftest import axe_violations, sign_in

PASSWORD = "a-long-portal-password"


def _person(username: str):
    user = UserFactory(username=username, first_name=username.title())
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def acme(transactional_db):
    boss = _person("boss")
    OrganizationFactory(id="acme", org_name="Acme Corp", created_by=boss)
    OrganizationFactory(id="globex", org_name="Globex")
    add_credits_to_pool(org_id="acme", amount=mc(10_000), actor_label="test")
    for username, credits in (("mia", 100), ("noah", 300), ("olga", 500)):
        user = _person(username)
        add_member(org_id="acme", user=user, actor_label="test")
        allocate_credits_to_user(org_id="acme", user=user, amount=mc(credits), actor_label="test")
        deduct_credits(
            user=user, org_id="acme", amount=mc(credits // 10), request_id=username, service_name="m"
        )
    allocate_credits_to_user(org_id="acme", user=boss, amount=mc(50), actor_label="test")


def _allocated(username: str) -> int:
    return UserCreditAllocation.objects.get(
        org_id="acme", user__username=username, is_active=True
    ).allocated_credits


def test_an_admin_allocates_and_transfers_and_the_api_agrees(
    page: Page, live_server, acme, artifacts
) -> None:
    sign_in(page, live_server.url, "boss", PASSWORD)
    page.get_by_role("link", name="Acme Corp").click()
    expect(page.get_by_role("heading", name="Acme Corp", level=1)).to_be_visible()
    expect(page.locator("#org-chart")).to_have_attribute("data-chart-ready", "1")
    assert axe_violations(page) == []
    page.screenshot(path=artifacts / "org-admin.png", full_page=True)

    # Allocate 250 more to mia with her row's Credits input and Allocate button.
    page.get_by_label("Credits for mia").fill("250")
    page.get_by_role("button", name="Allocate credits to mia").click()
    expect(page.get_by_role("status")).to_contain_text("Credits allocated to mia.")
    expect(page.locator('tr[data-user-id="mia"]')).to_contain_text("350")
    api = page.request.get(f"{live_server.url}/api/v1/org-billing/credits/acme/allocations").json()
    assert {a["user_id"]: a["allocated_credits"] for a in api["results"]}["mia"] == 350.0
    assert _allocated("mia") == mc(350)

    # Transfer 40 from olga to noah in the dialog.
    page.get_by_role("button", name="Transfer credits…").click()
    dialog = page.get_by_role("dialog", name="Transfer credits")
    expect(dialog).to_be_visible()
    dialog.get_by_label("From", exact=True).select_option("olga")
    dialog.get_by_label("To", exact=True).select_option("noah")
    dialog.get_by_label("Credits to transfer").fill("40")
    assert axe_violations(page) == []
    page.screenshot(path=artifacts / "org-transfer-dialog.png")
    dialog.get_by_role("button", name="Transfer", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Credits transferred.")
    assert (_allocated("olga"), _allocated("noah")) == (mc(460), mc(340))

    # Too much for the pool: the API's refusal next to the input, nothing changed.
    page.get_by_label("Credits for noah").fill("100000")
    page.get_by_role("button", name="Allocate credits to noah").click()
    credits = page.get_by_label("Credits for noah")
    expect(credits).to_have_attribute("aria-invalid", "true")
    expect(credits).to_have_accessible_description(
        "The organization's pool does not have that many unallocated credits."
    )
    assert _allocated("noah") == mc(340)

    # Export the usage by member as CSV (the API's export, through the session).
    with page.expect_download() as download:
        page.get_by_role("button", name="Export by member (CSV)").click()
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[0].startswith("period_start")
    assert {"mia", "noah", "olga"} <= {line.split(",")[1] for line in csv_text.splitlines()[1:]}


def test_a_member_sees_the_org_without_admin_controls_and_no_other_org(
    page: Page, live_server, acme, artifacts
) -> None:
    sign_in(page, live_server.url, "mia", PASSWORD)
    page.goto(f"{live_server.url}/portal/orgs/acme/")

    expect(page.locator("#my-allocation")).to_contain_text("90 credits left of 100")
    expect(page.get_by_role("button", name="Allocate credits to mia")).to_have_count(0)
    expect(page.get_by_role("button", name="Transfer credits…")).to_have_count(0)
    assert axe_violations(page) == []
    page.screenshot(path=artifacts / "org-member.png", full_page=True)

    response = page.goto(f"{live_server.url}/portal/orgs/globex/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


def test_the_system_page_is_for_system_admins_only(page: Page, live_server, acme, artifacts) -> None:
    ops = _person("ops")
    ops.is_staff = True
    ops.save()

    sign_in(page, live_server.url, "mia", PASSWORD)
    response = page.goto(f"{live_server.url}/portal/system/")
    assert response is not None and response.status == 403
    expect(page.locator("#refusal")).to_have_text("Only system admins can see the system overview.")
    expect(page.get_by_role("link", name="System")).to_have_count(0)

    page.context.clear_cookies()
    sign_in(page, live_server.url, "ops", PASSWORD)
    page.get_by_role("link", name="System").click()
    expect(page.get_by_role("heading", name="System overview", level=1)).to_be_visible()
    expect(page.locator("#top-orgs")).to_contain_text("Acme Corp")
    assert axe_violations(page) == []
    page.screenshot(path=artifacts / "system.png", full_page=True)
