"""No module in server/ grows past 400 lines (issue 10): a longer file is a sign that it
holds more than one reason to change, and it gets split along that seam instead.

Migrations are exempt: each is a frozen record of one schema step, never edited again.
"""

from __future__ import annotations

from pathlib import Path

MAX_LINES = 400
SERVER = Path(__file__).resolve().parent.parent / "server"


def _line_count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def test_no_server_module_is_over_the_limit() -> None:
    modules = [p for p in SERVER.rglob("*.py") if "migrations" not in p.relative_to(SERVER).parts]
    assert len(modules) > 50  # the walk found the package, not an empty directory
    too_long = {
        str(p.relative_to(SERVER.parent)): n
        for p in sorted(modules)
        if (n := _line_count(p)) > MAX_LINES
    }
    assert not too_long, f"split these modules (over {MAX_LINES} lines): {too_long}"
