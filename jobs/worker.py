"""``msd worker``: run batch tasks from the Redis stream in this process (server mode)."""

from __future__ import annotations

import asyncio
import logging

from taskiq import AsyncBroker
from taskiq.api import run_receiver_task

from jobs.broker import BrokerConfig, build_broker, requeue_unfinished
from msd.runtime import check_redis
from msd.settings import Settings, SettingsError
from workflow.db import Database, open_pool

__all__ = ["run_worker"]

logger = logging.getLogger(__name__)


def run_worker(settings: Settings, *, concurrency: int, config: BrokerConfig) -> int:
    """Take batch tasks until interrupted; ``concurrency`` tasks run at a time."""
    if not settings.redis_url:
        raise SettingsError(
            "msd worker needs MSD_REDIS_URL (the task queue); without it `msd serve` runs"
            " batches itself"
        )
    if concurrency < 1:
        raise SettingsError(f"--concurrency {concurrency}: a worker runs at least 1 task at a time")
    check_redis(settings.redis_url)
    db = open_pool(settings, max_size=concurrency + 2)
    try:
        broker = build_broker(settings, db, config)
        asyncio.run(_work(broker, db, concurrency, config.queue_name))
    finally:
        db.close()
    return 0


async def _work(broker: AsyncBroker, db: Database, concurrency: int, queue: str) -> None:
    await broker.startup()
    try:
        # A task whose worker was killed stays pending in the stream until a new message
        # arrives; queueing unfinished tasks again is that message, and covers lost ones too.
        requeued = await requeue_unfinished(broker, db)
        logger.info(
            "worker on queue %s: %d tasks at a time, %d unfinished tasks queued again",
            queue,
            concurrency,
            requeued,
        )
        await run_receiver_task(
            broker,
            sync_workers=concurrency,
            max_async_tasks=concurrency,
            max_prefetch=0,
        )
    finally:
        await broker.shutdown()
