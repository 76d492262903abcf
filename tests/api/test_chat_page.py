"""The web chat page in a real browser (Debian's headless Chromium, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Stack

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
# The docs' screenshot is taken again only when asked (UPDATE_SCREENSHOT=1): a test run leaves the checkout as it was.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "chat-page.png"


@pytest.fixture()
def page(stack: Stack) -> Iterator[playwright.Page]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])  # Playwright gives it a fresh profile directory
        context = browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 800})
        yield context.new_page()
        browser.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_chat_page_sends_shows_state_keeps_history_and_ends(page: playwright.Page, stack: Stack,
                                                            tmp_path: Path) -> None:
    expect = playwright.expect
    # A slower agent, so the reply is seen while it is being written.
    agent = httpx.post(f"{stack.base_url}/api/agents", json={
        "name": f"Slow Eliza {uuid.uuid4().hex[:6]}", "provider": "eliza", "settings": {"chunkDelayMs": 150}}).json()
    page.goto("/")
    page.locator("#agent-select").select_option(agent["id"])
    page.get_by_role("button", name="New session").click()
    expect(page.get_by_test_id("status")).to_have_text("active")

    page.locator("#content").fill("Hello, my name is Alice and my printer is broken")
    page.get_by_role("button", name="Send", exact=True).click()

    expect(page.locator(".message.agent.streaming")).to_have_count(1)  # chunks arriving
    agent_messages = page.locator(".message.agent:not(.streaming)")
    expect(agent_messages).to_have_count(1)
    expect(agent_messages.first).to_contain_text("Alice")
    expect(page.get_by_test_id("stage")).not_to_have_text("greeting")
    expect(page.locator("#state-preferences")).to_contain_text("name: Alice")
    expect(page.locator("#state-count")).to_have_text("2")
    screenshot = DOCS_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "chat-page.png"
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 0

    page.reload()
    expect(page.locator(".message.user")).to_have_count(1)
    expect(page.locator(".message.agent")).to_have_count(1)

    page.get_by_role("button", name="End", exact=True).click()
    expect(page.get_by_test_id("status")).to_have_text("ended")
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_disabled()
