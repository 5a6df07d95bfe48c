"""The board view's history live over GET /websocket (contract §13), and polling without it.

A second browser context (another tab, another user) sends; the first one's history must show
it. While the socket is live the view must make no polling request (`GET /notifications`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Harness

pytestmark = pytest.mark.browser

ADA, MAX = "11", "12"


def _live_mode(frame: Any) -> str:
    return str(frame.evaluate("() => document.body.dataset.live || ''"))


@pytest.fixture
def other_tab(browser: Any, harness: Harness) -> Iterator[Harness]:
    """Another tab in its own browser context, on the same server."""
    context = browser.new_context(viewport={"width": 1440, "height": 960})
    try:
        yield Harness(context.new_page(), harness.server)
    finally:
        context.close()


def _send_from(tab: Harness, recipient: str, text: str) -> None:
    sender = tab.open("board", user=MAX, role="member")
    sender.select_option("#recipient", recipient)
    sender.select_option("#send-as", "app")
    sender.fill("#message", text)
    sender.click("#send")


def _history_polls(harness: Harness) -> list[str]:
    return [u for m, u in harness.requests if m == "GET" and u.endswith("/notifications")]


def test_board_history_updates_from_the_socket_without_polling(
    harness: Harness, other_tab: Harness
) -> None:
    frame = harness.open("board", user=ADA, role="admin")
    frame.wait_for_function("() => document.body.dataset.live === 'socket'", timeout=15000)
    # The local monday shows the socket's messages next to the SDK messages (tokens redacted).
    socket_log = harness.page.locator("#socket-messages")
    socket_log.locator("li", has_text="init history").wait_for()
    assert "auth ok" in socket_log.inner_text()
    assert "eyJ" not in harness.page.content()
    harness.requests.clear()

    text = f"Live hello {uuid.uuid4().hex[:8]}"
    _send_from(other_tab, ADA, text)
    # The row appears, then its delivery progress reaches `sent`, with no reload and no poll.
    item = frame.locator(".history-item", has_text=text)
    item.locator(".chip-sent").wait_for(timeout=15000)
    assert _live_mode(frame) == "socket"
    assert _history_polls(harness) == []
    socket_log.locator("li", has_text="update history").first.wait_for()
    assert harness.errors == []


def test_board_history_falls_back_to_polling_when_the_socket_is_refused(
    harness: Harness, other_tab: Harness
) -> None:
    # Every /websocket of this tab is closed at once, as a proxy that refuses upgrades would.
    harness.page.context.route_web_socket(re.compile(r"/websocket$"), lambda ws: ws.close())
    frame = harness.open("board", user=ADA, role="admin")
    frame.wait_for_function("() => document.body.dataset.live === 'polling'", timeout=15000)
    harness.requests.clear()

    text = f"Polled hello {uuid.uuid4().hex[:8]}"
    _send_from(other_tab, ADA, text)
    item = frame.locator(".history-item", has_text=text)
    item.locator(".chip-sent").wait_for(timeout=15000)
    assert _history_polls(harness) != []  # it came by polling
    assert _live_mode(frame) == "polling"
