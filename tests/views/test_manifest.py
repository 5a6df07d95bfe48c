"""The monday app manifest: placeholders, scopes, and every URL it declares is served."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from server.manifest import MANIFEST_PATH, ManifestError, render, render_text, scopes, urls


def test_the_manifest_asks_for_exactly_the_scopes_the_app_needs() -> None:
    document = render("https://notify.example.com")
    assert sorted(scopes(document)) == sorted(
        ["me:read", "users:read", "boards:read", "notifications:write"]
    )


def test_the_manifest_declares_the_three_views() -> None:
    document = render("https://notify.example.com")
    types = {f["type"]: f for f in document["app"]["features"]}
    assert set(types) == {
        "AppFeatureBoardView",
        "AppFeatureDashboardWidget",
        "AppFeatureAccountSettingsView",
    }
    assert len({f["key"] for f in document["app"]["features"]}) == 3  # unique keys
    found = set(urls(document))
    assert found == {
        "https://notify.example.com/views/board",
        "https://notify.example.com/views/widget",
        "https://notify.example.com/views/settings",
    }


def test_every_placeholder_is_filled() -> None:
    raw = MANIFEST_PATH.read_text()
    assert "{{PUBLIC_BASE_URL}}" in raw
    rendered = json.dumps(render("https://x.example/"))
    assert "{{" not in rendered
    assert "https://x.example/views/board" in rendered  # trailing slash dropped
    with pytest.raises(ManifestError, match="SECRET"):
        render_text('{"a": "{{SECRET}}"}', {"PUBLIC_BASE_URL": "x"})


async def test_every_manifest_url_is_served_by_the_app(client: TestClient[Any, Any]) -> None:
    base = str(client.make_url("")).rstrip("/")
    declared = list(urls(render(base)))
    assert declared
    for url in declared:
        path = urlsplit(url).path
        response = await client.get(path)
        assert response.status == 200, url
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors https://*.monday.com https://*.monday.app" in csp, url
        assert "script-src 'self'" in csp, url


def test_manifest_render_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "manifest", "render", "--base-url", "https://n.example"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    document = json.loads(result.stdout)
    assert set(urls(document)) == {
        "https://n.example/views/board",
        "https://n.example/views/widget",
        "https://n.example/views/settings",
    }


def test_manifest_render_defaults_to_public_base_url(tmp_path: Path) -> None:
    env = {"PUBLIC_BASE_URL": "https://public.example", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "server", "manifest", "render"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
    )
    assert "https://public.example/views/widget" in result.stdout
