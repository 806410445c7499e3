"""One read shared by every caller waiting for it, each getting a value read after it asked.

Many requests at once each need the current value of a row (the replication watermark). Each
could read it, one round trip apiece; instead callers that arrive while a read is in flight wait
for the next read, which starts after all of them asked, and share its result. So no caller gets
a value older than its own call, and under load one read serves a whole group of callers.

``SharedRead`` serves threads; ``LoopSharedRead`` serves the coroutines of one event loop the
same way, so that requests on that loop need no thread of their own to wait for the read.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Awaitable, Callable, Generic, TypeVar

__all__ = ["LoopSharedRead", "SharedRead"]

T = TypeVar("T")


class _Slot(Generic[T]):
    """One read to come: who waits for it, whether one of them must make it, and its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.lead = threading.Event()
        self.claimed = False
        self.value: T | None = None
        self.error: BaseException | None = None


class SharedRead(Generic[T]):
    def __init__(self, read: Callable[[], T]) -> None:
        self._read = read
        self._guard = threading.Lock()
        self._next: _Slot[T] | None = None
        self._reading = False

    def __call__(self) -> T:
        with self._guard:
            if self._next is None:
                self._next = _Slot()
            slot = self._next
            if not self._reading:
                self._reading = True
                slot.lead.set()

        while not slot.done.is_set():
            slot.lead.wait()
            with self._guard:
                mine = not slot.claimed and not slot.done.is_set()
                slot.claimed = True
            if mine:
                self._make(slot)
            else:
                slot.done.wait()

        if slot.error is not None:
            raise slot.error
        return slot.value  # type: ignore[return-value]

    def _make(self, slot: _Slot[T]) -> None:
        """Read for ``slot``'s callers, then hand the next read to one of the next callers."""
        with self._guard:
            if self._next is slot:
                self._next = None  # callers from now on wait for a read that starts later
        try:
            slot.value = self._read()
        except BaseException as error:  # every waiter of this read sees its failure
            slot.error = error
        slot.done.set()
        with self._guard:
            if self._next is None:
                self._reading = False
            else:
                self._next.lead.set()


class LoopSharedRead(Generic[T]):
    """``SharedRead`` for the coroutines of one event loop: one read at a time, and callers that
    arrive while it runs share the next one, which starts after all of them asked."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next: asyncio.Future[T] | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __call__(self) -> T:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (a restarted test client): start afresh
            self._loop, self._next, self._reader = loop, None, None
        if self._next is None:
            self._next = loop.create_future()
            # A read that fails with nobody left waiting must not be reported as unretrieved.
            self._next.add_done_callback(lambda done: done.cancelled() or done.exception())
        upcoming = self._next
        if self._reader is None:
            self._reader = loop.create_task(self._read_while_asked())
        return await asyncio.shield(upcoming)

    async def _read_while_asked(self) -> None:
        try:
            while self._next is not None:
                serving, self._next = self._next, None  # later callers wait for the next read
                try:
                    serving.set_result(await self._read())
                except Exception as error:  # every waiter of this read sees its failure
                    serving.set_exception(error)
                except BaseException:  # cancelled with the loop: nobody waits for an answer
                    serving.cancel()
                    raise
        finally:
            if self._reader is asyncio.current_task():
                self._reader = None
