"""server/http/heap.py: start-up garbage is freed, what is alive is frozen out of the
collector's passes (and the collector still frees garbage made later)."""

from __future__ import annotations

import gc
import weakref

from server.http.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _garbage_cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # only the cyclic collector frees these
    return weakref.ref(a)


def test_startup_garbage_is_collected_and_the_live_heap_frozen() -> None:
    garbage = _garbage_cycle()
    alive = _Node()
    alive.other = alive
    assert gc.get_freeze_count() == 0
    try:
        frozen = freeze_startup_heap()
        # The cycle made before the freeze was freed, not frozen for the life of the process.
        assert garbage() is None
        assert frozen == gc.get_freeze_count() > 0
        # What is alive is out of every generation the collector walks.
        assert not any(obj is alive for obj in gc.get_objects())
        # Garbage made after the freeze is still collected.
        later = _garbage_cycle()
        gc.collect()
        assert later() is None
    finally:
        gc.unfreeze()
    assert any(obj is alive for obj in gc.get_objects())
