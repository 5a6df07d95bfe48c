"""Copy the front-end files the server ships from node_modules into server/views/vendor/.

The wheel must serve the monday SDK bundle, Vibe's CSS and the Figtree font with no Node at
run time (contract §14), so the few files needed are committed under server/views/vendor/,
listed with their node_modules source in server/views/vendor/sources.json. After changing a
version in package.json: `npm install`, then `make vendor` (this script), then commit.
`--check` exits 1 when a committed copy differs from node_modules (tests/views run it too).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR_DIR = ROOT / "server" / "views" / "vendor"
NODE_MODULES = ROOT / "node_modules"


def sources() -> dict[str, str]:
    """Served name (under /vendor/) -> path under node_modules."""
    files: dict[str, str] = json.loads((VENDOR_DIR / "sources.json").read_text())["files"]
    return files


def stale() -> list[str]:
    """The vendored files that are missing or differ from node_modules."""
    return [
        name
        for name, source in sources().items()
        if not (VENDOR_DIR / name).is_file()
        or (VENDOR_DIR / name).read_bytes() != (NODE_MODULES / source).read_bytes()
    ]


def main(argv: list[str]) -> int:
    missing = [s for s in sources().values() if not (NODE_MODULES / s).is_file()]
    if missing:
        print(f"vendor_assets: not in node_modules (run `npm ci`): {', '.join(missing)}")
        return 2
    if "--check" in argv:
        differ = stale()
        for name in differ:
            print(f"vendor_assets: server/views/vendor/{name} differs from node_modules")
        return 1 if differ else 0
    for name, source in sources().items():
        target = VENDOR_DIR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(NODE_MODULES / source, target)
    print(f"vendor_assets: {len(sources())} file(s) copied to {VENDOR_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
