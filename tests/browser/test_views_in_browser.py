"""The views in real (headless) Chromium, framed by the local monday, against the real server."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.browser.conftest import SCREENSHOTS, Harness

pytestmark = pytest.mark.browser

ADA, MAX, GUS, VERA = "11", "12", "13", "14"


def _compose(frame: Any, recipient: str, text: str, send_as: str = "") -> None:
    frame.select_option("#recipient", recipient)
    frame.select_option("#send-as", send_as)
    frame.fill("#message", text)


def _connect_api_key(harness: Harness, key: str) -> None:
    settings = harness.open("settings", user=ADA, role="admin")
    settings.fill("#api-key", key)
    settings.click("#save-api-key")
    harness.wait_for_notice("success", "API key connected")
    settings.wait_for_function(
        "() => document.getElementById('api-key-state').textContent.includes('Connected')"
    )
    state = settings.inner_text("#api-key-state")
    assert "Ada Admin" in state
    assert "…r-11" in state  # the last 4 characters only
    assert key not in settings.content()  # never the secret


def test_send_as_the_app_by_seamless_relay_lands_in_the_bell(harness: Harness) -> None:
    frame = harness.open("board", user=ADA, role="admin")
    assert frame.inner_text("#sender-name") == "the app"
    text = f"Seamless hello {uuid.uuid4().hex[:8]}"
    _compose(frame, MAX, text, send_as="app")
    frame.click("#send")

    entry = harness.wait_for_bell(MAX, text)
    assert entry["from_app"] is True
    harness.wait_for_notice("success", "Notification sent to Max Member")
    # The harness bell says where it came from, and the board's history shows it sent.
    bell = harness.page.locator(f'.bell[data-user="{MAX}"]')
    bell.get_by_text(text).wait_for()
    assert "from the app" in bell.inner_text()
    item = frame.locator(".history-item", has_text=text)
    item.locator(".chip-sent").wait_for(timeout=10000)
    # It went through monday's seamless api() from the page, then was reported back.
    methods = [(m, u.rsplit("/", 1)[-1]) for m, u, s in harness.responses if s == 200]
    assert ("POST", "seamless") in methods
    assert ("POST", "relay") in methods


def test_send_as_the_app_with_an_oauth_credential(harness: Harness) -> None:
    settings = harness.open("settings", user=ADA, role="admin")
    with harness.page.expect_popup() as popup_info:
        settings.click("#connect-app")
    popup = popup_info.value
    popup.wait_for_url(re.compile(r"/oauth/callback"), timeout=15000)
    popup.wait_for_load_state()
    assert "close" in popup.inner_text("body").lower()
    popup.close()
    settings.wait_for_function(
        "() => document.getElementById('oauth-state').textContent.includes('Connected')",
        timeout=10000,
    )
    # A member does not see the installer's token: not told the app is not connected.
    member = harness.open("settings", user=MAX, role="member")
    member.wait_for_function(
        "() => document.getElementById('oauth-state').textContent.includes('by you')"
    )
    assert member.inner_text("#oauth-state").startswith("Not connected by you")

    frame = harness.open("board", user=ADA, role="admin")
    text = f"OAuth hello {uuid.uuid4().hex[:8]}"
    _compose(frame, MAX, text, send_as="app")
    frame.click("#send")
    entry = harness.wait_for_bell(MAX, text)
    assert entry["from_app"] is True
    # A server-side send: the page never ran a seamless call for it.
    assert not any(u.endswith("/relay") for _, u, _ in harness.responses)


def test_send_as_the_installer_with_the_api_key(harness: Harness) -> None:
    _connect_api_key(harness, "dev-personal-key-user-11")
    frame = harness.open("board", user=ADA, role="admin")
    frame.select_option("#send-as", "installer")
    assert frame.inner_text("#sender-name") == "Ada Admin (the installer)"
    text = f"From Ada herself {uuid.uuid4().hex[:8]}"
    _compose(frame, MAX, text, send_as="installer")
    frame.click("#send")

    entry = harness.wait_for_bell(MAX, text)
    assert entry["from_app"] is False
    assert entry["shown_from"] == "Ada Admin"
    bell = harness.page.locator(f'.bell[data-user="{MAX}"]')
    bell.get_by_text(text).wait_for()
    assert "from Ada Admin" in bell.inner_text()


def test_widget_double_click_notifies_once(harness: Harness) -> None:
    frame = harness.open("widget", user=MAX, role="member")
    button = frame.locator("#notify-owner")
    assert button.inner_text() == "Notify the owner of Launch board"
    button.dblclick()
    harness.wait_for_notice("success", "owner has been notified")
    harness.page.wait_for_timeout(1500)
    text = "Your attention is needed on the Launch board."
    assert [n["text"] for n in harness.server.bell(ADA)].count(text) == 1
    posts = [s for m, u, s in harness.responses if m == "POST" and u.endswith("/notifications")]
    assert posts == [200]
    # The widget lists it, and the owner's unread count goes up when the owner opens it.
    frame.locator("#latest .history-item").first.wait_for()
    owner = harness.open("widget", user=ADA, role="admin")
    owner.wait_for_function("() => document.getElementById('unread').textContent === '1'")


def test_an_expired_token_is_recovered_with_one_retry(harness: Harness) -> None:
    frame = harness.open("board", user=ADA, role="admin")
    text = f"After expiry {uuid.uuid4().hex[:8]}"
    _compose(frame, MAX, text, send_as="app")
    harness.responses.clear()
    # Arm the harness and submit in the same task, so the send gets the expired token.
    harness.page.evaluate(
        "() => { document.getElementById('expire-next').checked = true;"
        " document.getElementById('frame').contentDocument"
        ".getElementById('compose').requestSubmit(); }"
    )
    harness.wait_for_bell(MAX, text)
    # The bell can have the row before the browser reports the 200: wait for both responses.
    assert harness.wait_for_responses("POST", "/notifications", 2) == [401, 200]
    assert not [n for n in harness.notices() if n[0] == "error"]


def test_an_expired_token_on_the_page_load_reloads_once(harness: Harness) -> None:
    harness.open("board", user=ADA, role="admin")
    harness.page.evaluate(
        "() => { document.getElementById('frame').src ="
        " '/views/board?sessionToken=expired.jwt.x'; }"
    )
    # The refresh page asks the harness for a fresh token and reloads once with it.
    harness.page.wait_for_function(
        "() => { const f = document.getElementById('frame');"
        " return f.contentWindow.location.search.includes('reloaded=1')"
        " && f.contentDocument.body && f.contentDocument.body.dataset.ready === '1'; }",
        timeout=15000,
    )
    frame = harness.frame("board")
    assert frame.inner_text("#sender-name") == "the app"
    statuses = [s for m, u, s in harness.responses if u.endswith("/views/board")]
    assert statuses[-2:] == [401, 200]


def test_a_view_only_user_is_refused_clearly(harness: Harness) -> None:
    frame = harness.open("board", user=VERA, role="view_only")
    banner = frame.locator("#banner")
    assert banner.is_visible()
    assert "view-only access" in banner.inner_text()
    assert frame.locator("#send").is_disabled()
    # Even if the form is submitted, nothing is sent and the user is told why.
    frame.evaluate("() => document.getElementById('compose').requestSubmit()")
    harness.wait_for_notice("error", "view-only access")
    assert not [u for m, u, _ in harness.responses if m == "POST" and u.endswith("/notifications")]


def test_a_guest_under_the_installer_policy_cannot_press_send(harness: Harness) -> None:
    """The policy leaves a guest no sender (guests never send as the installer): the board
    says so and its Send button stays disabled, now and for later; an admin can send."""
    settings = harness.open("settings", user=ADA, role="admin")
    settings.check('input[name="sender_policy"][value="installer"]')
    settings.click("#save-policy")
    harness.wait_for_notice("success", "Sender policy saved")

    frame = harness.open("board", user=GUS, role="guest")
    frame.wait_for_function(
        "() => document.getElementById('sender-name').textContent.startsWith('nobody')"
    )
    assert "your role can't send" in frame.inner_text("#sender-name")
    assert frame.locator("#send").is_disabled()
    frame.select_option("#when", "later")
    assert "your role can't send" in frame.inner_text("#sender-name")
    assert frame.locator("#send").is_disabled()

    frame = harness.open("board", user=ADA, role="admin")
    frame.wait_for_function(
        "() => document.getElementById('sender-name').textContent.includes('the installer')"
    )
    assert frame.locator("#send").is_enabled()


def test_a_script_in_a_message_is_shown_as_inert_text(harness: Harness) -> None:
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    frame = harness.open("board", user=ADA, role="admin")
    _compose(frame, MAX, payload, send_as="app")
    frame.click("#send")
    harness.wait_for_bell(MAX, payload)

    history = frame.locator(".history-message", has_text="alert(1)")
    history.first.wait_for(timeout=10000)
    assert history.first.inner_text() == payload
    assert frame.locator(".history-message script, .history-message img").count() == 0
    bell = harness.page.locator(f'.bell[data-user="{MAX}"] .bell-text', has_text="alert(1)")
    bell.first.wait_for()
    assert bell.first.inner_text() == payload
    assert harness.page.locator(".bell img, .bell script").count() == 0

    widget = harness.open("widget", user=MAX, role="member")
    latest = widget.locator("#latest .history-message", has_text="alert(1)")
    latest.first.wait_for(timeout=10000)
    assert latest.first.inner_text() == payload
    assert "To you" in widget.inner_text("#latest")
    harness.page.wait_for_timeout(300)
    assert harness.dialogs == []
    assert harness.errors == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_each_view(harness: Harness, theme: str) -> None:
    """Saved under tests/artifacts/screenshots (docs/screenshots with `make screenshots`);
    also checks the theme reached each view."""
    frame = harness.open("board", user=ADA, role="admin", theme=theme)
    _compose(frame, MAX, "The release notes are ready for review.", send_as="app")
    frame.click("#send")
    frame.locator(".history-item .chip-sent").first.wait_for(timeout=15000)
    _compose(frame, MAX, "Can you check the launch checklist?", send_as="")
    for view in ("board", "widget", "settings"):
        frame = harness.open(view, user=ADA, role="admin", theme=theme)
        assert frame.evaluate("() => document.body.className") == f"{theme}-app-theme"
        if view == "widget":
            frame.locator("#latest .history-item").first.wait_for(timeout=10000)
        if view == "board":
            frame.locator(".history-item").first.wait_for(timeout=10000)
            _compose(frame, MAX, "Can you check the launch checklist?")
        harness.screenshot(f"{view}-{theme}")
    harness.page.screenshot(path=str(SCREENSHOTS / f"harness-{theme}.png"))


def test_theme_changes_reach_the_view_without_reload(harness: Harness) -> None:
    frame = harness.open("board", user=ADA, role="admin", theme="light")
    background_light = frame.evaluate("() => getComputedStyle(document.body).backgroundColor")
    harness.page.select_option("#theme", "black")
    frame.wait_for_function("() => document.body.className === 'black-app-theme'")
    background_black = frame.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background_light != background_black
