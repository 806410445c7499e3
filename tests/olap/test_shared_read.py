"""Concurrent callers share reads, and none gets a value read before it asked."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from olap.shared_read import SharedRead


def test_every_caller_gets_a_read_that_began_after_its_call_and_reads_are_shared() -> None:
    counter = itertools.count(1)
    started: dict[int, float] = {}

    def slow_read() -> int:
        number = next(counter)
        started[number] = time.monotonic()
        time.sleep(0.005)
        return number

    shared = SharedRead(slow_read)
    seen: list[tuple[float, int]] = []
    lock = threading.Lock()

    def caller() -> None:
        for _ in range(20):
            asked = time.monotonic()
            value = shared()
            with lock:
                seen.append((asked, value))

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(seen) == 16 * 20
    assert all(started[value] >= asked for asked, value in seen), "a read older than the call"
    reads = len(started)
    assert reads < len(seen) / 3, f"{reads} reads for {len(seen)} calls: hardly shared"


def test_a_failed_read_fails_its_callers_and_the_next_call_reads_again() -> None:
    outcomes = iter([RuntimeError("store away"), 7])

    def read() -> int:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    shared = SharedRead(read)

    with pytest.raises(RuntimeError, match="store away"):
        shared()
    assert shared() == 7
