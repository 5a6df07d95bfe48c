"""The front-end files shipped in the package match the versions package-lock.json pins.

server/views/vendor/ holds copies of the few node_modules files the server serves (contract §14:
no Node at run time). After `npm ci`, a version bump without `make vendor` fails here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _vendor_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vendor_assets", ROOT / "scripts" / "vendor_assets.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vendored_copies_match_node_modules() -> None:
    script = _vendor_script()
    missing = [s for s in script.sources().values() if not (script.NODE_MODULES / s).is_file()]
    if missing:
        reason = f"node_modules lacks {missing}: run `npm ci`"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert script.stale() == [], "run `make vendor` and commit server/views/vendor/"


def test_every_vendored_file_has_its_license() -> None:
    script = _vendor_script()
    folders = {name.split("/")[0] for name in script.sources()}
    for folder in folders:
        assert (script.VENDOR_DIR / folder / "LICENSE").is_file(), folder
