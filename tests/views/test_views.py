"""The pages monday frames: CSP, no inline script, token handling on page loads, assets."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.http.templates import TEMPLATES_DIR
from tests.conftest import make_settings, start_app

VIEWS = ("board", "widget", "settings")
STATIC_JS = Path(__file__).resolve().parents[2] / "views" / "static" / "js"


class _Scripts(HTMLParser):
    """Collects <script> tags, their inline text and any on* event-handler attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


def _csp(header: str) -> dict[str, str]:
    directives = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value.strip()
    return directives


@pytest.mark.parametrize("view", VIEWS)
async def test_view_is_served_with_the_views_csp(client: TestClient[Any, Any], view: str) -> None:
    response = await client.get(f"/views/{view}")
    assert response.status == 200
    assert response.content_type == "text/html"
    csp = _csp(response.headers["Content-Security-Policy"])
    # Production: exactly FRAME_ANCESTORS (the default monday origins), no 'self'.
    assert csp["frame-ancestors"] == "https://*.monday.com https://*.monday.app"
    assert csp["script-src"] == "'self'"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers


@pytest.mark.parametrize("view", VIEWS)
async def test_view_has_no_inline_script(client: TestClient[Any, Any], view: str) -> None:
    parser = _Scripts()
    parser.feed(await (await client.get(f"/views/{view}")).text())
    assert parser.scripts, "the view loads its scripts"
    assert all(script.get("src") for script in parser.scripts)
    assert parser.inline == []
    assert parser.handlers == []
    srcs = [script["src"] for script in parser.scripts]
    assert "/vendor/monday-sdk-js/main.js" in srcs
    assert f"/static/js/{view}.js" in srcs


async def test_frame_ancestors_come_from_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, frame_ancestors="https://acme.monday.com")
    async for client in start_app(create_app(settings)):
        response = await client.get("/views/board")
        csp = _csp(response.headers["Content-Security-Policy"])
        assert csp["frame-ancestors"] == "https://acme.monday.com"


async def test_dev_mode_lets_the_harness_frame_the_views(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, app_env="development")
    async for client in start_app(create_app(settings)):
        response = await client.get("/views/widget")
        ancestors = _csp(response.headers["Content-Security-Policy"])["frame-ancestors"].split()
        assert ancestors == ["'self'", "https://*.monday.com", "https://*.monday.app"]


async def test_assets_carry_the_csp_too(client: TestClient[Any, Any]) -> None:
    for path in ("/static/js/board.js", "/static/css/views.css"):
        response = await client.get(path)
        assert response.status == 200, path
        assert "frame-ancestors" in response.headers["Content-Security-Policy"]


async def test_a_valid_session_token_on_the_page_load_is_accepted(
    client: TestClient[Any, Any], mint: Any
) -> None:
    response = await client.get("/views/board", params={"sessionToken": mint()})
    assert response.status == 200
    assert "/static/js/board.js" in await response.text()


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda mint: mint(lifetime=-120), "TOKEN_EXPIRED"),
        (lambda mint: mint(secret="not-our-secret"), "TOKEN_INVALID_SIGNATURE"),
        (lambda mint: "not-a-jwt", "TOKEN_MALFORMED"),
    ],
)
async def test_a_bad_session_token_answers_the_refresh_page(
    client: TestClient[Any, Any], mint: Any, make_token: Any, code: str
) -> None:
    response = await client.get("/views/widget", params={"sessionToken": make_token(mint)})
    assert response.status == 401
    assert response.content_type == "text/html"
    body = await response.text()
    assert f'data-code="{code}"' in body
    assert "/static/js/refresh.js" in body
    assert "/static/js/widget.js" not in body
    assert "frame-ancestors" in response.headers["Content-Security-Policy"]


async def test_unknown_view_is_not_found(client: TestClient[Any, Any]) -> None:
    response = await client.get("/views/admin")
    assert response.status == 404


async def test_only_the_vendored_files_are_served(client: TestClient[Any, Any]) -> None:
    """The SDK bundle, Vibe's CSS and the Figtree font, from the package (no node_modules)."""
    sdk = await client.get("/vendor/monday-sdk-js/main.js")
    assert sdk.status == 200
    assert "mondaySdk" in await sdk.text()
    css = await client.get("/vendor/vibe/index.css")
    assert css.status == 200
    assert ".dark-app-theme" in await css.text()
    font = await client.get("/vendor/figtree/figtree-latin-wght-normal.woff2")
    assert font.status == 200
    assert (await font.read())[:4] == b"wOF2"
    face = await client.get("/static/css/figtree.css")
    assert "font-family: 'Figtree'" in await face.text()
    for path in (
        "/vendor/monday-sdk-js/package.json",
        "/vendor/../package.json",
        "/vendor/sources.json",
    ):
        assert (await client.get(path)).status == 404, path


def test_templates_autoescape_what_users_wrote() -> None:
    """Every template is rendered autoescaped by the environment the app configures."""
    app = web.Application()
    from server.http.templates import setup_templates

    setup_templates(app)
    setup_templates(app)  # idempotent: a second surface calling it changes nothing
    import aiohttp_jinja2

    env: jinja2.Environment = aiohttp_jinja2.get_env(app)
    payload = "<script>alert(1)</script>"
    rendered = env.from_string("<p>{{ text }}</p>").render(text=payload)
    assert "<script>" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    for name in ("board.html", "widget.html", "settings.html"):
        html = env.get_template(name).render(view="board", title=payload, dev=False)
        assert payload not in html
        assert "&lt;script&gt;" in html
    refresh = env.get_template("refresh.html").render(
        view="board", title="Board", dev=False, code=payload
    )
    assert payload not in refresh
    assert (TEMPLATES_DIR / "base.html").is_file()


def test_scripts_never_parse_user_text_as_html() -> None:
    """User text reaches the DOM through textContent only (contract §8)."""
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(")
    offenders = [path.name for path in STATIC_JS.glob("*.js") if forbidden.search(path.read_text())]
    assert offenders == []
