"""The README's automation, run locally: `mint-token --dev --kind integration` against a
`serve --dev` on a port of its own, and the action sends as the app. (No browser: this file
lives here for the `server` fixture, the installed package's dev server.)"""

from __future__ import annotations

import os
import subprocess
import urllib.error
from pathlib import Path
from typing import Any

from tests.browser.conftest import Server


def action(run: str) -> dict[str, Any]:
    """A run-URL request of the custom action (run `run` of its recipe)."""
    return {
        "payload": {
            "inboundFieldValues": {"userId": 12, "itemId": 7001, "text": "Deal closed, locally"},
            "recipeId": 1,
            "integrationId": 2,
        },
        "runtimeMetadata": {"actionUuid": run, "triggerUuid": "t1"},
    }


def mint(command: str, cwd: Path, port: str, *args: str) -> str:
    """`monday-notify mint-token` as the README runs it, with the server's PORT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONDAY_", "APP_"))}
    for name in ("PUBLIC_BASE_URL", "ENCRYPTION_KEYS", "PYTHONPATH", "HOST"):
        env.pop(name, None)
    env["PORT"] = port
    done = subprocess.run(
        [command, "mint-token", "--dev", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def run_action(server: Server, token: str, run: str) -> tuple[int, Any]:
    try:
        body = action(run)
        return 200, server.request_json("POST", "/monday/actions/notify", body, token=token)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_dev_integration_token_carries_a_short_lived_token_the_fake_monday_knows(
    server: Server, installed_command: str, tmp_path: Path
) -> None:
    port = server.url.rsplit(":", 1)[1]
    token = mint(installed_command, tmp_path, port, "--kind", "integration", "--user", "12")
    status, body = run_action(server, token, "local-run-1")
    assert (status, body) == (200, {}), body
    [entry] = [n for n in server.bell("12") if n["text"] == "Deal closed, locally"]
    assert entry["from_app"] is True and entry["target_id"] == "7001"

    # A short-lived token the fake monday never issued is refused by it: the row fails, and
    # the action answers monday's action-error format.
    unknown = mint(
        installed_command,
        tmp_path,
        port,
        "--kind",
        "integration",
        "--user",
        "12",
        "--short-lived-token",
        "not-one-the-fake-issued",
    )
    status, body = run_action(server, unknown, "local-run-2")
    assert status == 422 and "UNAUTHORIZED" in body, body
