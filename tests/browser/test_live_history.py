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


def _api(harness: Harness, method: str, path: str, user: str, body: Any = None) -> Any:
    """A call to our API as a dev user, outside any browser (a third client)."""
    minted = harness.server.post_json("/dev/api/token", {"user": user})
    return harness.server.request_json(method, path, body, token=minted["data"]["token"])


def test_widget_unread_count_follows_the_socket(harness: Harness, other_tab: Harness) -> None:
    frame = harness.open("widget", user=ADA, role="admin")
    frame.wait_for_function("() => document.body.dataset.live === 'socket'", timeout=15000)
    start = int(frame.inner_text("#unread"))
    harness.requests.clear()

    text = f"Unread hello {uuid.uuid4().hex[:8]}"
    _send_from(other_tab, ADA, text)
    frame.locator("#latest .history-item", has_text=text).wait_for(timeout=15000)
    frame.wait_for_function(
        "n => document.getElementById('unread').textContent === String(n)", arg=start + 1
    )
    # Archived elsewhere: the row leaves the unread filter, and the badge still hears of it.
    rows = _api(harness, "GET", "/notifications?limit=-1", ADA)["data"]
    row_id = next(r["id"] for r in rows if r["message"] == text)
    _api(harness, "PATCH", f"/notifications/{row_id}", ADA, {"status": "archived"})
    frame.wait_for_function(
        "n => document.getElementById('unread').textContent === String(n)", arg=start
    )
    assert _history_polls(harness) == []
    assert _live_mode(frame) == "socket"


def test_the_socket_reauthenticates_before_the_token_expires(
    harness: Harness, other_tab: Harness
) -> None:
    harness.open("board", user=ADA, role="admin")
    # Tokens that live 66 s: the view re-authenticates a minute before `exp`, i.e. after ~6 s.
    harness.page.fill("#token-lifetime", "66")
    harness.page.click("#reload")
    frame = harness.wait_for_view("board")
    frame.wait_for_function("() => document.body.dataset.live === 'socket'", timeout=15000)
    count = "s => window.mondayNotifySocketLog.filter(e => e.summary === s).length"
    frame.wait_for_function(f"() => ({count})('→ auth') >= 2", timeout=20000)
    frame.wait_for_function(f"() => ({count})('← auth ok') >= 2", timeout=10000)
    harness.requests.clear()
    # Still the same live socket afterwards: a change arrives without polling.
    text = f"After re-auth {uuid.uuid4().hex[:8]}"
    _send_from(other_tab, ADA, text)
    frame.locator(".history-item", has_text=text).wait_for(timeout=15000)
    assert _live_mode(frame) == "socket"
    assert _history_polls(harness) == []
    assert frame.evaluate(f"() => ({count})('socket open')") == 1
