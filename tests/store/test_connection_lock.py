"""The lock in front of the store's connection: the fence of a create (urgent) goes first."""

from __future__ import annotations

import threading
import time

import pytest

from woo2d365.store.connection import ConnectionLock

WAIT = 5.0  # seconds a thread may take to reach a point on a loaded machine


def _until(condition: object) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "a thread did not get there in time"
        time.sleep(0.001)


@pytest.mark.parametrize("attempt", range(3))  # a lock without the lane passes by luck at times
def test_an_urgent_caller_takes_the_freed_lock_before_those_waiting_longer(attempt: int) -> None:
    lock = ConnectionLock()
    order: list[str] = []

    def take(name: str, *, urgent: bool = False) -> None:
        with lock.held(urgent=urgent):
            order.append(name)

    lock.acquire()  # the holder
    others = [threading.Thread(target=take, args=(f"reader {i}",)) for i in range(5)]
    for thread in others:
        thread.start()
    time.sleep(0.05)  # they wait first
    urgent = threading.Thread(target=take, args=("fence",), kwargs={"urgent": True})
    urgent.start()
    _until(lambda: lock._urgent == 1)
    lock.release()
    for thread in [urgent, *others]:
        thread.join(WAIT)
    assert order[0] == "fence"
    assert sorted(order[1:]) == [f"reader {i}" for i in range(5)]


def test_the_holder_takes_the_lock_again_while_an_urgent_caller_waits() -> None:
    lock = ConnectionLock()
    done = threading.Event()

    def fence() -> None:
        with lock.held(urgent=True):
            done.set()

    with lock:
        thread = threading.Thread(target=fence)
        thread.start()
        _until(lambda: lock._urgent == 1)
        with lock, lock.held():  # nested, as a store call inside batch()
            assert not done.is_set()
    thread.join(WAIT)
    assert done.is_set()
