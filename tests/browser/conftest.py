"""Browser tests: the real server (dev mode, its own temp dir and SQLite file) in a subprocess
on 127.0.0.1, driven through the local monday at /dev by Debian's Chromium, headless.

Chromium is never downloaded. Without /usr/bin/chromium the tests skip locally but FAIL
under CI=true, so a CI machine cannot pass by not running them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.helpers import free_port
from tests.packaging.wheel import installed_venv

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
# Test runs write screenshots under tests/artifacts (gitignored); `make screenshots` points this
# at docs/screenshots to refresh the README's pictures on purpose.
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOTS_DIR") or ROOT / "tests" / "artifacts" / "screenshots"
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as answer:  # noqa: S310
            return json.loads(answer.read())

    def request_json(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if token is not None:
            headers["Authorization"] = token
        request = urllib.request.Request(  # noqa: S310 (our own server on 127.0.0.1)
            self.url + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            raw = answer.read()
        return json.loads(raw) if raw else None

    def post_json(self, path: str, body: Any) -> Any:
        return self.request_json("POST", path, body)

    def bell(self, user_id: str) -> list[dict[str, Any]]:
        for entry in self.get_json("/dev/api/bell")["data"]:
            if entry["user"]["id"] == user_id:
                found: list[dict[str, Any]] = entry["notifications"]
                return found
        raise AssertionError(f"no dev user {user_id}")


@pytest.fixture(scope="session")
def installed_command(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`monday-notify` from the wheel built from this checkout, in a fresh venv (contract §14:
    the browser tests drive the installed package, not the source tree)."""
    return str(installed_venv(tmp_path_factory.getbasetemp()) / "bin" / "monday-notify")


@pytest.fixture
def server(tmp_path: Path, installed_command: str) -> Iterator[Server]:
    """`monday-notify serve --dev` in a subprocess, its var/ and database under tmp_path."""
    port = free_port()
    ours = ("MONDAY_", "APP_", "PYTHONPATH")  # PYTHONPATH would put the checkout first
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    for name in ("PUBLIC_BASE_URL", "ENCRYPTION_KEYS", "FRAME_ANCESTORS", "HOST", "PORT"):
        env.pop(name, None)
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'browser.db'}"
    env["DELIVERY_POLL_SECONDS"] = "0.1"
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        command = [installed_command, "serve", "--dev"]
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as answer:  # noqa: S310
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    try:
        yield Server(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: run `make system-deps` (Debian's chromium package)."
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@dataclass
class Harness:
    """The /dev page in a browser tab, and what happened in it."""

    page: Any
    server: Server
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    responses: list[tuple[str, str, int]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, URL without query)

    def open(self, view: str, user: str = "11", role: str = "admin", theme: str = "light") -> Any:
        """Load /dev framing `view` and wait until the view says it is ready."""
        self.page.goto(f"{self.server.url}/dev?view={view}&user={user}&role={role}&theme={theme}")
        return self.wait_for_view(view)

    def wait_for_view(self, view: str) -> Any:
        self.page.wait_for_function(
            "v => { const f = document.getElementById('frame');"
            " const d = f && f.contentDocument;"
            " return d && d.body && d.body.dataset.view === v && d.body.dataset.ready === '1'; }",
            arg=view,
            timeout=15000,
        )
        return self.frame(view)

    def frame(self, view: str) -> Any:
        for frame in self.page.frames:
            if re.search(rf"/views/{view}(\?|$)", frame.url):
                return frame
        raise AssertionError(f"no frame for {view}: {[f.url for f in self.page.frames]}")

    def notices(self) -> list[tuple[str, str]]:
        items = self.page.locator("#notices li")
        return [
            (items.nth(i).get_attribute("data-type") or "", items.nth(i).inner_text())
            for i in range(items.count())
        ]

    def wait_for_notice(self, kind: str, contains: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for found_kind, text in self.notices():
                if found_kind == kind and contains in text:
                    return text
            self.page.wait_for_timeout(100)
        raise AssertionError(f"no {kind} notice containing {contains!r}: {self.notices()}")

    def wait_for_bell(self, user_id: str, text: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.server.bell(user_id):
                if entry["text"] == text:
                    return entry
            # Playwright's sync API dispatches events (responses, dialogs) only while it runs.
            self.page.wait_for_timeout(100)
        raise AssertionError(f"{text!r} never reached user {user_id}'s bell: {self.notices()}")

    def wait_for_responses(
        self, method: str, suffix: str, count: int, timeout: float = 15.0
    ) -> list[int]:
        """The statuses of the first `count` `method` responses whose URL ends with `suffix`,
        once that many were seen: the browser may report a response after its effect shows."""
        deadline = time.monotonic() + timeout
        while True:
            found = [s for m, u, s in self.responses if m == method and u.endswith(suffix)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            self.page.wait_for_timeout(50)  # lets Playwright dispatch the response events

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.locator("#frame").screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def new_harness(browser: Any, server: Server, **context_options: Any) -> Harness:
    """A tab in a new browser context (e.g. `timezone_id=`) recording what happens in it;
    the caller closes `harness.page.context`."""
    context = browser.new_context(viewport={"width": 1440, "height": 960}, **context_options)
    page = context.new_page()
    h = Harness(page, server)
    page.on("dialog", lambda dialog: (h.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: h.errors.append(str(error)))
    page.on(
        "response",
        lambda r: h.responses.append((r.request.method, r.url.split("?")[0], r.status)),
    )
    page.on("request", lambda r: h.requests.append((r.method, r.url.split("?")[0])))
    return h


@pytest.fixture
def harness(browser: Any, server: Server) -> Iterator[Harness]:
    h = new_harness(browser, server)
    try:
        yield h
    finally:
        h.page.context.close()
