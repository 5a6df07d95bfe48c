"""The monday app manifest (`manifest/manifest.json`) and `monday-notify manifest render`.

The file is what `mapps manifest:import` uploads; its `{{VAR}}` placeholders are filled the
way the CLI fills them (from the environment), here from our settings, so the URLs point at
this deployment. Every URL it declares must be served by the app (tests/views check that).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

MANIFEST_PATH = Path(__file__).resolve().parents[1] / "manifest" / "manifest.json"
SCOPES = ("me:read", "users:read", "boards:read", "notifications:write")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Z][A-Z0-9_]*)\s*\}\}")


class ManifestError(Exception):
    """The manifest cannot be rendered (a placeholder has no value)."""


def render_text(template: str, values: Mapping[str, str]) -> str:
    """Fill every `{{NAME}}`; a name without a value is an error, as in `mapps` without `-m`."""
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise ManifestError(f"no value for {', '.join(missing)}")
    # Values go into JSON strings, so they are JSON-escaped (without the quotes).
    return _PLACEHOLDER.sub(lambda m: json.dumps(values[m.group(1)])[1:-1], template)


def render(base_url: str, path: Path = MANIFEST_PATH) -> dict[str, Any]:
    """The manifest with `{{PUBLIC_BASE_URL}}` set to `base_url` (no trailing slash)."""
    text = render_text(path.read_text(), {"PUBLIC_BASE_URL": base_url.rstrip("/")})
    document: dict[str, Any] = json.loads(text)
    return document


def urls(document: Any) -> Iterator[str]:
    """Every http(s) URL anywhere in the manifest."""
    if isinstance(document, str):
        if document.startswith(("http://", "https://")):
            yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from urls(value)
    elif isinstance(document, list):
        for value in document:
            yield from urls(value)


def scopes(document: Mapping[str, Any]) -> list[str]:
    """The OAuth scopes the manifest asks for."""
    found: list[str] = document["app"]["oauth"]["scopes"]
    return found
