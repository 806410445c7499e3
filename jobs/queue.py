"""Submitting batch tasks from a serving process: record in PostgreSQL, then enqueue.

A task is answered as queued only once the broker took it; when the broker (Redis) cannot take
it, the record is removed again and the caller is told to retry, so no batch is accepted and
then silently lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from jobs import task_state
from jobs.batch import CHUNK_SIZE
from jobs.task_state import BatchRequest, BatchTask
from msd.settings import Settings
from workflow.db import Database

if TYPE_CHECKING:
    from taskiq import AsyncBroker

    from jobs.broker import BrokerConfig

__all__ = ["BatchQueue", "QueueUnavailable"]

logger = logging.getLogger(__name__)


class QueueUnavailable(RuntimeError):
    """The task broker cannot take tasks now; nothing was queued."""


@dataclass
class BatchQueue:
    """The batch tasks of one serving process: its broker, started on first use."""

    settings: Settings
    db: Database
    # The default broker configuration when None; taskiq loads with the first batch only.
    config: BrokerConfig | None = None
    chunk_size: int = CHUNK_SIZE
    broker: AsyncBroker | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def submit(self, request: BatchRequest, idempotency_key: str | None) -> BatchTask:
        """Record and enqueue a task; the same key and request give back the first task."""
        broker = await self._started()
        task, created = await asyncio.to_thread(
            task_state.create_task,
            self.db,
            request,
            chunk_size=self.chunk_size,
            idempotency_key=idempotency_key,
        )
        if created:
            await self._enqueue(broker, task)
        return task

    async def take_over(self) -> None:
        """In embedded mode, start running tasks a previous serving process left unfinished."""
        if not self.settings.redis_url:
            await self._started()

    async def _enqueue(self, broker: AsyncBroker, task: BatchTask) -> None:
        from taskiq.exceptions import SendTaskError

        from jobs.broker import send_batch

        try:
            await send_batch(broker, task.task_id)
        except (RedisError, OSError, SendTaskError) as error:
            # A broker that started before Redis went away reports it as SendTaskError.
            reason = (
                error.__cause__ if isinstance(error, SendTaskError) and error.__cause__ else error
            )
            await asyncio.to_thread(task_state.delete_task, self.db, task.task_id)
            logger.error("task %s not queued, Redis refused it: %s", task.task_id, reason)
            raise QueueUnavailable(f"the task queue (Redis) did not take the batch: {reason}")
        logger.info(
            "task %s queued: %s over %d alerts", task.task_id, task.request["action"], task.total
        )

    async def _started(self) -> AsyncBroker:
        async with self._lock:
            if self.broker is None:
                self.broker = await self._start()
        return self.broker

    async def _start(self) -> AsyncBroker:
        from jobs.broker import BrokerConfig, build_broker, requeue_unfinished

        broker = build_broker(self.settings, self.db, self.config or BrokerConfig())
        try:
            await broker.startup()
        except (RedisError, OSError) as error:
            raise QueueUnavailable(f"the task queue (Redis) does not answer: {error}") from None
        if not self.settings.redis_url:
            # In-process tasks die with the process that ran them; this one takes them over.
            await requeue_unfinished(broker, self.db)
        return broker

    async def close(self) -> None:
        if self.broker is not None:
            await self.broker.shutdown()
            self.broker = None
