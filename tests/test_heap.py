"""server/http/heap.py: start-up garbage is freed, what is alive is frozen out of the
collector's passes, young collections wait for more objects, and the collector still frees
garbage made later."""

from __future__ import annotations

import gc
import weakref

from server.http.heap import YOUNG_THRESHOLD, settle_heap


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
    thresholds = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    try:
        frozen = settle_heap()
        # The cycle made before the freeze was freed, not frozen for the life of the process.
        assert garbage() is None
        assert frozen == gc.get_freeze_count() > 0
        # What is alive is out of every generation the collector walks.
        assert not any(obj is alive for obj in gc.get_objects())
        # Young collections wait for more new objects; the older generations' do not change.
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *thresholds[1:])
        assert YOUNG_THRESHOLD > thresholds[0]
        # Garbage made after the freeze is still collected.
        later = _garbage_cycle()
        gc.collect()
        assert later() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert any(obj is alive for obj in gc.get_objects())
