"""``msd scheduler``: send each configured job when its schedule says so.

The broker is chosen as for batch tasks (``jobs.broker``). With ``MSD_REDIS_URL`` the scheduler
only sends: jobs go through the Redis stream to ``msd worker`` processes, which run them. Without
it the broker is in-memory, so jobs run in the process that schedules them: ``msd scheduler``
itself, or ``msd serve --schedule``, which shares its open stores with them (the embedded
ClickHouse folder can be open in one process only, so beside a running ``msd serve`` the
schedules belong in it).

Cron schedules skip the minute the scheduler starts in (without that Taskiq fires them at
start); interval schedules run first at start, then every interval.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta

from taskiq import AsyncBroker, InMemoryBroker, TaskiqScheduler
from taskiq.cli.scheduler.run import SchedulerLoop

from jobs.broker import BrokerConfig, _redis_broker
from jobs.scheduled import JobContext, register_jobs
from jobs.schedules import Schedule, ScheduleFileSource
from msd.runtime import Services, check_redis
from msd.settings import Settings, SettingsError
from workflow.db import open_pool

__all__ = ["InProcessScheduler", "run_scheduler"]

logger = logging.getLogger(__name__)

# Schedules come from a file read at start; the loop need not ask for them again.
_UPDATE_INTERVAL = timedelta(days=1)


def run_scheduler(settings: Settings, schedules: list[Schedule], *, queue_name: str) -> int:
    """Schedule until interrupted (the jobs run here in embedded mode, in workers with Redis)."""
    enabled = [s for s in schedules if s.enabled]
    if not enabled:
        raise SettingsError("no schedule is enabled: nothing to do (see `msd scheduler --list`)")
    if settings.redis_url:
        check_redis(settings.redis_url)
        broker = _redis_broker(settings, BrokerConfig(queue_name=queue_name))
        context = None
        where = f"to workers on the Redis stream {queue_name}"
    else:
        context = JobContext(settings, open_pool(settings, max_size=4))
        broker = _in_memory(context)
        where = "in this process"
    for schedule in enabled:
        logger.info("schedule %s: %s, %s", schedule.name, schedule.when(), schedule.what())
    print(f"scheduling {len(enabled)} jobs, run {where}; Ctrl-C stops", flush=True)
    try:
        asyncio.run(_schedule(broker, enabled))
    finally:
        if context is not None:
            context.close()
            context.db.close()
    return 0


def _in_memory(context: JobContext) -> AsyncBroker:
    broker = InMemoryBroker(sync_tasks_pool_size=2, max_stored_results=10)
    register_jobs(broker, context)
    return broker


async def _schedule(broker: AsyncBroker, schedules: list[Schedule]) -> None:
    scheduler = TaskiqScheduler(broker, [ScheduleFileSource(schedules)])
    await scheduler.startup()
    try:
        await SchedulerLoop(scheduler).run(update_interval=_UPDATE_INTERVAL, skip_first_run=True)
    finally:
        await scheduler.shutdown()


class InProcessScheduler:
    """The schedules run inside a serving process (embedded mode), on its own stores."""

    def __init__(self, services: Services, schedules: list[Schedule]) -> None:
        if services.settings.redis_url:
            raise SettingsError(
                "--schedule is for embedded mode; with MSD_REDIS_URL run `msd scheduler` (once)"
                " and `msd worker`"
            )
        self.schedules = [s for s in schedules if s.enabled]
        self.context = JobContext(services.settings, services.db, services.store)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="scheduler", daemon=True
        )
        self._thread.start()
        started.wait(10)
        logger.info("running %d schedules in this process", len(self.schedules))

    def _run(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._task = loop.create_task(_schedule(_in_memory(self.context), self.schedules))
        started.set()
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
