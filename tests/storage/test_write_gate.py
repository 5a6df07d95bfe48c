"""`WriteGate` (server/storage/write_gate.py): the SQLite writer thread and `engine.begin()`
take turns first come, first served, and a cancelled waiter does not keep the gate."""

from __future__ import annotations

import asyncio
import threading
import time

from server.storage.write_gate import WriteGate

WAIT = 10.0  # seconds: only reached when the behaviour is broken


def wait_for_tickets(gate: WriteGate, count: int) -> None:
    """Until `count` tickets were handed out (a waiter has queued). Polled: taking a ticket
    notifies nobody (only a release does)."""
    deadline = time.monotonic() + WAIT
    while gate._next < count:
        assert time.monotonic() < deadline, "the waiter never queued"
        time.sleep(0.001)


def test_a_waiter_gets_its_turn_before_the_holder_takes_the_gate_again() -> None:
    # The writer thread takes the gate again right after each group: with a plain lock it
    # could take it back before a waiting `begin()` woke up, group after group.
    gate = WriteGate()
    gate.acquire()  # the writer thread, in a group
    waiter_in = threading.Event()
    release_waiter = threading.Event()

    def waiter() -> None:
        gate.acquire()
        waiter_in.set()
        release_waiter.wait(WAIT)
        gate.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_for_tickets(gate, 2)
    gate.release()
    holder_again = threading.Event()

    def holder() -> None:
        gate.acquire()  # the next group, asked for right after the last one
        holder_again.set()
        gate.release()

    second = threading.Thread(target=holder)
    second.start()
    assert waiter_in.wait(WAIT), "the waiter never got the gate"
    assert not holder_again.is_set(), "the holder took the gate again before the waiter"
    release_waiter.set()
    assert holder_again.wait(WAIT)
    thread.join(WAIT)
    second.join(WAIT)


def test_try_acquire_never_jumps_the_queue() -> None:
    gate = WriteGate()
    assert gate.try_acquire()
    assert not gate.try_acquire()  # held
    gate.release()
    assert gate.try_acquire()
    gate.release()


async def test_a_cancelled_enter_gives_its_turn_back() -> None:
    gate = WriteGate()
    gate.acquire()
    entered = asyncio.Event()

    async def writer() -> None:
        async with gate.enter():
            entered.set()

    task = asyncio.create_task(writer())
    await asyncio.get_running_loop().run_in_executor(None, wait_for_tickets, gate, 2)
    task.cancel()
    gate.release()  # the cancelled waiter's turn comes now; nobody uses it
    got_it = await asyncio.get_running_loop().run_in_executor(None, _acquire_within, gate)
    assert got_it, "the gate stayed with the cancelled waiter"
    assert task.cancelled() or task.done()
    assert not entered.is_set()


def _acquire_within(gate: WriteGate) -> bool:
    done = threading.Event()

    def take() -> None:
        gate.acquire()
        done.set()

    threading.Thread(target=take, daemon=True).start()
    return done.wait(WAIT)


async def test_enter_takes_a_free_gate_without_a_thread() -> None:
    gate = WriteGate()
    async with gate.enter():
        assert not gate.try_acquire()  # held by us
    assert gate.try_acquire()
    gate.release()
