"""Where the pages' files live: inside the installed package, never in the source tree.

Templates, our static files and the vendored front-end files (server/views/vendor, copied from
node_modules by `make vendor`) are package data, so `pip install monday-notify-*.whl` and
`monday-notify serve` work from any directory with no Node at run time (contract §14).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path


def _package_dir(*parts: str) -> Path:
    """A directory of package data. pip installs wheels unzipped, so it is a real directory."""
    found = resources.files("server").joinpath(*parts)
    if not isinstance(found, Path) or not found.is_dir():
        raise RuntimeError(f"monday-notify is installed without server/{'/'.join(parts)}")
    return found


VIEWS_DIR = _package_dir("views")
TEMPLATES_DIR = VIEWS_DIR / "templates"
STATIC_DIR = VIEWS_DIR / "static"
VENDOR_DIR = VIEWS_DIR / "vendor"


@cache
def vendor_files() -> dict[str, Path]:
    """What `/vendor/<name>` serves: the files listed in vendor/sources.json, nothing else."""
    names = json.loads((VENDOR_DIR / "sources.json").read_text())["files"]
    return {name: VENDOR_DIR / name for name in names}
