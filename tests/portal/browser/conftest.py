"""Real-browser tests of the portal: Playwright drives Debian's chromium (``/usr/bin/chromium``,
installed by ``scripts/chromium.sh`` from ``make test``; Playwright never downloads a browser)
against pytest-django's live server (a thread of this process, its own database connections,
so the tests' data is committed: ``transactional_db``). One browser for all of them, a fresh
context (cookies, storage) per test.

Screenshots go to ``test-artifacts/portal/`` (``ORGBILLING_TEST_ARTIFACTS`` overrides the root).
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

# The gateway tests' uvicorn server, fake upstream and price: a call through the real gateway
# shows in the portal's charts (test_usage_journey.py).
from tests.billing.gateway.conftest import gateway, gateway_server, model_price, upstream  # noqa: F401

CHROMIUM = "/usr/bin/chromium"
# The flags that work on this kind of machine (RECIPES.md, "Browser tests").
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("ORGBILLING_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "portal"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One chromium for every browser test.

    While Playwright runs, its event loop is the running loop of this thread, and Django
    refuses ORM calls beside a running loop (``SynchronousOnlyOperation``). The tests' own ORM
    calls (setting up, checking the database, the flush) run between browser steps, never
    during one, so the refusal is lifted exactly while Playwright runs; package-scoped, not
    session-scoped, so the rest of the suite gets its thread back without a loop."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/chromium.sh install (make test does)")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
            )
            yield chromium
            chromium.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (cookies, storage) per test, as a person in Paris at desktop width."""
    context = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="Europe/Paris")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now (id, impact, elements)."""
    page.evaluate(AXE.read_text())  # evaluated by the DevTools protocol: the page's CSP does not apply
    return page.evaluate(
        """async () => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]}});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(" ")),
            }));
        }"""
    )


def sign_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Through the sign-in page, as a person would; lands on the portal."""
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/portal/")
