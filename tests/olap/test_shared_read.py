"""Concurrent callers share reads, and none gets a value read before it asked: threads
(SharedRead) and the coroutines of one event loop (LoopSharedRead)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Iterator

import pytest

from olap.shared_read import LoopSharedRead, SharedRead


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


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    running.close()


def test_loop_callers_share_reads_that_began_after_they_asked(
    loop: asyncio.AbstractEventLoop,
) -> None:
    counter = itertools.count(1)
    started: dict[int, float] = {}

    async def slow_read() -> int:
        number = next(counter)
        started[number] = time.monotonic()
        await asyncio.sleep(0.005)
        return number

    shared = LoopSharedRead(slow_read)

    async def caller() -> list[tuple[float, int]]:
        seen = []
        for _ in range(20):
            asked = time.monotonic()
            seen.append((asked, await shared()))
        return seen

    async def everyone() -> list[tuple[float, int]]:
        results = await asyncio.gather(*(caller() for _ in range(16)))
        return [pair for seen in results for pair in seen]

    seen = loop.run_until_complete(everyone())

    assert len(seen) == 16 * 20
    assert all(started[value] >= asked for asked, value in seen), "a read older than the call"
    assert len(started) < len(seen) / 3, f"{len(started)} reads for {len(seen)} calls"


def test_a_failed_loop_read_fails_its_callers_and_the_next_call_reads_again(
    loop: asyncio.AbstractEventLoop,
) -> None:
    outcomes = iter([RuntimeError("store away"), 7])

    async def read() -> int:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    shared = LoopSharedRead(read)

    with pytest.raises(RuntimeError, match="store away"):
        loop.run_until_complete(shared())
    assert loop.run_until_complete(shared()) == 7
