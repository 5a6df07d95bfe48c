"""Issue 12: a view opened outside monday says where it runs, and the harness leaves the
framed view room in a 900 px window."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Server


@pytest.mark.parametrize("view", ["board", "widget", "settings"])
def test_a_view_opened_outside_monday_says_where_it_runs(
    browser: Any, server: Server, view: str
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{server.url}/views/{view}")
        # Decided at once (no parent frame), not after the SDK's 10 s timeout.
        page.wait_for_function(
            "() => document.body.dataset.ready === 'outside-monday'", timeout=5000
        )
        text = page.inner_text("main")
        assert "inside monday" in text and "/dev" in text
        assert "Loading" not in text
        assert page.locator("button").count() == 0  # no dead button left
    finally:
        context.close()


def test_the_harness_gives_the_framed_view_most_of_a_900px_window(
    browser: Any, server: Server
) -> None:
    context = browser.new_context(viewport={"width": 900, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/dev?view=board")
        page.wait_for_function(
            "() => { const d = document.getElementById('frame').contentDocument;"
            " return d && d.body && d.body.dataset.ready === '1'; }",
            timeout=15000,
        )
        box = page.locator("#frame").bounding_box()
        assert box is not None and box["width"] >= 600, box
    finally:
        context.close()
