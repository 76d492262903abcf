"""The web chat page in headless Chromium against a real API + worker (Playwright, Debian's chromium)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, update

from core.clock import utcnow
from core.models import sessions_table
from tests.support.factories import SESSIONS, unique_user
from tests.support.processes import Stack

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.parametrize("backend", ["postgres"], indirect=True, scope="session"),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Set to a path (e.g. docs/web-chat.png) to keep the screenshot taken mid-conversation.
SCREENSHOT = os.environ.get("WEB_CHAT_SCREENSHOT")


@pytest.fixture()
def page(stack: Stack) -> Iterator[playwright.Page]:
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720}, base_url=stack.base_url)
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def server_streams(stack: Stack, session_id: str) -> bool:
    with httpx.stream("GET", f"{stack.base_url}{SESSIONS}/{session_id}/events", timeout=5) as response:
        return response.headers.get("content-type", "").startswith("text/event-stream")


def start_session(page: playwright.Page, user: str) -> str:
    page.goto("/")
    page.fill("#user-id", user)
    page.dispatch_event("#user-id", "change")
    page.select_option("#agent", label="Eliza (eliza)")
    page.click("#new-session")
    playwright.expect(page.locator("#session-status")).to_have_text("active")
    return page.inner_text("#session-id")


def test_chat_page_streams_a_reply_updates_state_keeps_history_and_ends(stack: Stack, page: playwright.Page,
                                                                        tmp_path: Path) -> None:
    expect = playwright.expect
    session_id = start_session(page, unique_user())
    expect(page.locator("#state-stage")).to_have_text("greeting")
    # Remember whether a reply was ever shown while still streaming.
    page.evaluate("""() => { window.sawStreaming = false;
        new MutationObserver(() => { if (document.querySelector('.message.streaming')) window.sawStreaming = true; })
          .observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true}); }""")

    page.fill("#content", "Hello, I am so sad and lonely today")
    page.click("#send")

    expect(page.locator("#message-count")).to_have_text("2")
    agent_reply = page.locator(".message.agent .content")
    expect(agent_reply).to_have_count(1)
    reply_text = agent_reply.inner_text()
    assert reply_text.strip()
    expect(page.locator("#state-sentiment")).to_contain_text("negative")
    expect(page.locator("#time-left")).to_contain_text("min")
    if server_streams(stack, session_id):
        assert page.evaluate("window.sawStreaming"), "the reply should appear chunk by chunk"
    page.screenshot(path=SCREENSHOT or str(tmp_path / "web-chat.png"))

    page.reload()
    expect(page.locator(".message.user .content")).to_have_text(["Hello, I am so sad and lonely today"])
    expect(page.locator(".message.agent .content")).to_have_text([reply_text])
    expect(page.locator("#session-id")).to_have_text(session_id)
    expect(page.locator(f'#sessions li[data-id="{session_id}"]')).to_have_class("current")

    page.click("#end")
    expect(page.locator("#session-status")).to_have_text("ended")
    expect(page.locator("#content")).to_be_disabled()
    assert httpx.get(f"{stack.base_url}{SESSIONS}/{session_id}").json()["status"] == "ended"


def test_expired_session_offers_a_new_one(page: playwright.Page, postgres_url: str) -> None:
    expect = playwright.expect
    session_id = start_session(page, unique_user())
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(update(sessions_table).where(sessions_table.c.id == uuid.UUID(session_id))
                     .values(expires_at=utcnow() - timedelta(minutes=1)))
    engine.dispose()

    page.fill("#content", "Are you still there?")
    page.click("#send")

    expect(page.locator("#error-text")).to_contain_text("expired")
    expect(page.locator("#session-status")).to_have_text("expired")
    page.click("#error-action")
    expect(page.locator("#session-status")).to_have_text("active")
    assert page.inner_text("#session-id") != session_id
    expect(page.locator("#error")).to_be_hidden()


def test_older_history_loads_when_scrolling_up(stack: Stack, page: playwright.Page) -> None:
    expect = playwright.expect
    user = unique_user()
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        session_id = http.post(SESSIONS, json={"agentId": "e1a2a000-0000-4000-8000-000000000001",
                                               "userId": user}).json()["sessionId"]
        for n in range(1, 12):
            assert http.post(f"{SESSIONS}/{session_id}/messages", json={"content": f"message {n}"}).status_code == 201

    page.goto(f"/#session={session_id}")

    messages = page.locator("#messages .message")
    expect(messages).to_have_count(20)  # one page: the newest 20 of 22
    expect(page.locator(".message.user .content").first).to_have_text("message 2")
    page.locator("#messages").evaluate("(list) => list.scrollTo(0, 0)")
    expect(messages).to_have_count(22)
    expect(page.locator(".message.user .content").first).to_have_text("message 1")
