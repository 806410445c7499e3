"""The Taskiq broker for batch tasks, built from the settings.

With ``MSD_REDIS_URL`` set, tasks go through a Redis stream (delivered again when a worker dies
before acknowledging) to ``msd worker`` processes, and a Redis result backend keeps what each
run returned. Unset, an in-memory broker runs them in the serving process itself. Either way a
task carries only its id: its request and its progress are in PostgreSQL, so a task delivered
twice or resumed after a crash changes nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from taskiq import AsyncBroker, InMemoryBroker
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from jobs.runner import RetryPolicy, run_task
from jobs.scheduled import JobContext, register_jobs
from jobs.task_state import unfinished_task_ids
from msd.settings import Settings
from workflow.db import Database

__all__ = [
    "RESULT_SECONDS",
    "TASK_NAME",
    "BrokerConfig",
    "build_broker",
    "requeue_unfinished",
    "result_prefix",
    "send_batch",
]

logger = logging.getLogger(__name__)

TASK_NAME = "msd.process_batch"
# How long Redis keeps a run's result (a batch's final state, a scheduled job's summary); the
# batch's whole record stays in PostgreSQL.
RESULT_SECONDS = 86_400


@dataclass(frozen=True)
class BrokerConfig:
    """Where tasks queue (the stream's key in Redis) and how they are retried."""

    queue_name: str = "msd-batch"
    # A task not acknowledged this long after delivery goes to another worker; above the
    # longest batch, so that a batch still running is not started twice for nothing.
    idle_timeout_ms: int = 600_000
    retry: RetryPolicy = RetryPolicy()
    embedded_threads: int = 2


def build_broker(settings: Settings, db: Database, config: BrokerConfig) -> AsyncBroker:
    """A broker with ``process_batch`` registered, running tasks against ``db``."""
    broker = _redis_broker(settings, config) if settings.redis_url else _memory_broker(config)
    policy = replace(config.retry, max_runs=settings.batch_max_runs)

    def process_batch(task_id: str) -> str:
        return run_task(db, task_id, policy)

    broker.register_task(process_batch, task_name=TASK_NAME)
    # Scheduled jobs (msd scheduler) reach workers on the same stream.
    register_jobs(broker, JobContext(settings, db))
    return broker


def _redis_broker(settings: Settings, config: BrokerConfig) -> AsyncBroker:
    assert settings.redis_url is not None
    broker = RedisStreamBroker(
        settings.redis_url,
        queue_name=config.queue_name,
        consumer_group_name=config.queue_name,
        # From the stream's start: tasks queued before any worker ever ran are still delivered.
        consumer_id="0",
        idle_timeout=config.idle_timeout_ms,
        xread_block=1000,
        xread_count=1,
        maxlen=100_000,
        socket_connect_timeout=2,
        socket_timeout=10,
    )
    results = RedisAsyncResultBackend(
        settings.redis_url,
        result_ex_time=RESULT_SECONDS,
        prefix_str=result_prefix(config.queue_name),
        socket_connect_timeout=2,
        socket_timeout=10,
    )
    return broker.with_result_backend(results)


def result_prefix(queue_name: str) -> str:
    """Results are kept in Redis under ``<prefix>:<task id>``."""
    return f"{queue_name}-results"


def _memory_broker(config: BrokerConfig) -> AsyncBroker:
    return InMemoryBroker(sync_tasks_pool_size=config.embedded_threads, max_stored_results=10)


async def send_batch(broker: AsyncBroker, task_id: str) -> None:
    """Queue one delivery of a batch task; its result is kept under the batch's own task id."""
    task = broker.find_task(TASK_NAME)
    assert task is not None, "build_broker registers the task"
    await task.kicker().with_task_id(task_id).kiq(task_id)


async def requeue_unfinished(broker: AsyncBroker, db: Database) -> int:
    """Queue again every task PostgreSQL has as unfinished, after a process that ran it died.

    A task still queued or running elsewhere is then delivered twice, which is harmless: the
    second run waits for the first's lock and finds it finished.
    """
    task_ids = unfinished_task_ids(db)
    for task_id in task_ids:
        await send_batch(broker, task_id)
        logger.info("task %s queued again: it was unfinished", task_id)
    return len(task_ids)
