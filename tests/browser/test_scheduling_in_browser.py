"""Contract §12 in the views, in real headless Chromium against the real server: "send later"
from the board view, cancelling a scheduled row, and the settings view's quiet hours, digest
window and mute. Each test checks what the server then reports, not only the page.

The server's delivery worker polls every 0.1 s (the `server` fixture), so a row scheduled a
few seconds ahead goes out a few seconds later; the tests wait for that with a bounded timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import Harness, Server, new_harness

pytestmark = pytest.mark.browser

ADA, MAX = "11", "12"
ADA_KEY = "dev-personal-key-user-11"  # the fake monday's personal API key of dev user 11
# A zone with a half-hour offset, far from the server's UTC: a wrong conversion shows.
BROWSER_ZONE = "Asia/Kolkata"
# Far enough ahead that the POST surely arrives before it is due, short enough not to wait long.
AHEAD = timedelta(seconds=8)


def _api(server: Server, method: str, path: str, user: str, body: Any = None) -> Any:
    """A call to our API as a dev user, outside any browser."""
    minted = server.post_json("/dev/api/token", {"user": user})
    return server.request_json(method, path, body, token=minted["data"]["token"])


def _row(server: Server, user: str, text: str) -> dict[str, Any]:
    rows = _api(server, "GET", "/notifications?limit=-1", user)["data"]
    found: dict[str, Any] = next(r for r in rows if r["message"] == text)
    return found


@pytest.fixture
def kolkata(browser: Any, server: Server) -> Iterator[Harness]:
    """A tab whose browser believes it is in India."""
    tab = new_harness(browser, server, timezone_id=BROWSER_ZONE)
    try:
        yield tab
    finally:
        tab.page.context.close()


def _is_notifications_post(response: Any) -> bool:
    return bool(response.request.method == "POST" and response.url.endswith("/notifications"))


def _compose_later(frame: Any, recipient: str, text: str) -> None:
    frame.select_option("#recipient", recipient)
    frame.select_option("#send-as", "")
    frame.fill("#message", text)
    frame.select_option("#when", "later")


def test_send_later_from_the_board_goes_out_when_due(kolkata: Harness) -> None:
    server = kolkata.server
    # Sent later means sent by the server: it needs a credential (here the installer's key).
    _api(server, "PUT", "/installation/api-key", ADA, {"api_key": ADA_KEY})
    frame = kolkata.open("board", user=ADA, role="admin")
    text = f"Later hello {uuid.uuid4().hex[:8]}"
    _compose_later(frame, MAX, text)
    assert frame.locator("#send-at").is_visible()
    assert frame.inner_text("#send").strip() == "Schedule notification"
    # No relay later: the view says the server will send it with the installer's key.
    assert frame.inner_text("#sender-name") == "Ada Admin (the installer)"

    # The user types wall-clock time where the browser is; seconds resolution.
    due = datetime.now(ZoneInfo(BROWSER_ZONE)).replace(microsecond=0) + AHEAD
    frame.fill("#send-at", due.strftime("%Y-%m-%dT%H:%M:%S"))
    with kolkata.page.expect_response(_is_notifications_post) as answer_info:
        frame.click("#send")
    answer = answer_info.value
    # Posted as that instant with the browser's own offset, and stored as that instant.
    assert answer.request.post_data_json["send_at"] == due.isoformat()
    row = answer.json()["data"]
    row = row[0] if isinstance(row, list) else row
    assert row["delivery_status"] == "scheduled"
    assert datetime.fromisoformat(row["send_at"]) == due
    kolkata.wait_for_notice("success", "scheduled for")

    # The history says when it goes out (the line stays once it is sent).
    item = frame.locator(".history-item", has_text=text)
    item.locator(".history-schedule", has_text="Scheduled for").wait_for(timeout=15000)
    kolkata.screenshot("board-send-later")

    # It reaches the recipient's bell in the local monday, not before it was due.
    entry = kolkata.wait_for_bell(MAX, text, timeout=30)
    assert entry["from_app"] is False
    assert entry["shown_from"] == "Ada Admin"
    assert datetime.fromisoformat(entry["at"]) >= due
    kolkata.page.locator(f'.bell[data-user="{MAX}"]').get_by_text(text).wait_for()
    item.locator(".chip-sent").wait_for(timeout=15000)
    assert _row(server, ADA, text)["delivery_status"] == "sent"
    assert kolkata.errors == []


def test_a_scheduled_row_is_cancelled_from_the_board_history(harness: Harness) -> None:
    server = harness.server
    text = f"Never mind {uuid.uuid4().hex[:8]}"
    # Nothing connected: a live send could relay, a later one can't, and the view says so.
    frame = harness.open("board", user=ADA, role="admin")
    _compose_later(frame, MAX, text)
    assert frame.inner_text("#sender-name").startswith("nobody yet")
    frame.click("#send")
    harness.wait_for_notice("error", "Nothing is connected")
    assert harness.wait_for_responses("POST", "/notifications", 1) == [409]

    _api(server, "PUT", "/installation/api-key", ADA, {"api_key": ADA_KEY})
    frame = harness.open("board", user=ADA, role="admin")
    _compose_later(frame, MAX, text)
    # "Later" is prefilled an hour ahead; the user keeps it.
    assert frame.input_value("#send-at") != ""
    frame.click("#send")
    harness.wait_for_notice("success", "scheduled for")
    assert _row(server, ADA, text)["delivery_status"] == "scheduled"

    # The recipient, who neither sent it nor is an admin, gets no "Cancel".
    other = harness.open("board", user=MAX, role="member")
    theirs = other.locator(".history-item", has_text=text)
    theirs.locator(".chip-scheduled").wait_for(timeout=15000)
    assert theirs.locator("button.cancel-scheduled").count() == 0

    frame = harness.open("board", user=ADA, role="admin")
    item = frame.locator(".history-item", has_text=text)
    item.locator("button.cancel-scheduled").click(timeout=15000)
    harness.wait_for_notice("success", "cancelled")
    item.locator(".chip-cancelled").wait_for(timeout=15000)
    assert _row(server, ADA, text)["delivery_status"] == "cancelled"
    assert item.locator("button.cancel-scheduled").count() == 0
    assert text not in [n["text"] for n in server.bell(MAX)]


def test_admin_saves_quiet_hours_and_digest_and_sees_refusals(harness: Harness) -> None:
    server = harness.server
    frame = harness.open("settings", user=ADA, role="admin")
    assert not frame.locator("#quiet-on").is_checked()
    frame.check("#quiet-on")
    frame.fill("#quiet-start", "22:00")
    frame.fill("#quiet-end", "06:30")
    frame.fill("#digest-window", "120")
    frame.click("#save-schedule")
    harness.wait_for_notice("success", "Quiet hours and digest saved")
    saved = _api(server, "GET", "/installation", ADA)["data"]
    assert saved["quiet_hours"] == {"start": "22:00", "end": "06:30"}
    assert saved["digest_window_seconds"] == 120
    harness.screenshot("settings-quiet-hours")

    # The server refuses start = end and a window over an hour: its message shows in the view
    # and nothing changes.
    frame.fill("#quiet-end", "22:00")
    frame.click("#save-schedule")
    frame.locator("#schedule-error", has_text="differ").wait_for(timeout=10000)
    frame.fill("#quiet-end", "06:30")
    frame.fill("#digest-window", "4000")
    frame.click("#save-schedule")
    frame.locator("#schedule-error", has_text="digest_window_seconds").wait_for(timeout=10000)
    assert harness.wait_for_responses("PATCH", "/installation", 3) == [200, 400, 400]
    assert _api(server, "GET", "/installation", ADA)["data"]["digest_window_seconds"] == 120

    # Off again: no quiet hours, no digest.
    frame.uncheck("#quiet-on")
    frame.fill("#digest-window", "0")
    frame.click("#save-schedule")
    assert harness.wait_for_responses("PATCH", "/installation", 4)[3] == 200
    saved = _api(server, "GET", "/installation", ADA)["data"]
    assert saved["quiet_hours"] is None
    assert saved["digest_window_seconds"] == 0
    assert frame.inner_text("#schedule-error") == ""


def test_everyone_mutes_this_app_for_themselves(harness: Harness) -> None:
    server = harness.server
    _api(server, "PATCH", "/installation", ADA, {"quiet_hours": {"start": "23:00", "end": "05:00"}})
    frame = harness.open("settings", user=MAX, role="member")
    # A member sees the account's quiet hours but can't change them.
    assert frame.locator("#quiet-on").is_checked()
    assert frame.input_value("#quiet-start") == "23:00"
    assert frame.locator("#save-schedule").is_disabled()
    assert frame.locator("#digest-window").is_disabled()

    mute = frame.locator("#mute-all")
    assert mute.is_enabled() and not mute.is_checked()
    mute.check()
    assert harness.wait_for_responses("PUT", "/preferences/mutes", 1) == [200]
    mutes = _api(server, "GET", "/preferences/mutes", MAX)["data"]
    assert [m["target"] for m in mutes] == [None]
    assert _api(server, "GET", "/preferences/mutes", ADA)["data"] == []  # only their own

    # Reopened, the switch shows what the server has.
    frame = harness.open("settings", user=MAX, role="member")
    assert frame.locator("#mute-all").is_checked()
    frame.locator("#mute-all").uncheck()
    assert harness.wait_for_responses("DELETE", "/preferences/mutes", 1) == [204]
    assert _api(server, "GET", "/preferences/mutes", MAX)["data"] == []
    assert harness.errors == []
