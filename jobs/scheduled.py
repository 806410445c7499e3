"""The scheduled jobs as Taskiq tasks: replication drain, reconciliation, Parquet snapshot.

They run wherever the broker delivers them: in the scheduling process itself with the in-memory
broker (embedded mode), or in ``msd worker`` processes from Redis (server mode). Each is safe to
run twice or beside other processes: the drain takes the replicator's lock or skips, the
reconciliation reads at a consistent point and repairs idempotently, a snapshot is written under
temporary names and renamed into place.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from taskiq import AsyncBroker

from jobs.schedules import JOBS, task_name
from msd.settings import Settings
from olap.store import ClickHouseStore, open_store
from workflow.db import Database

__all__ = ["JobContext", "register_jobs", "run_job", "snapshot_folder"]

logger = logging.getLogger(__name__)


def snapshot_folder(settings: Settings, out: str | None = None) -> Path:
    if out:
        return Path(out).expanduser()
    return settings.snapshot_dir or settings.data_dir / "snapshots"


@dataclass
class JobContext:
    """What jobs run against. ``store``, when given, is shared (a serving process's own);
    otherwise ClickHouse is opened when a job needs it: for each job when embedded (so that the
    folder is free between jobs for the process that serves), once for a server."""

    settings: Settings
    db: Database
    store: ClickHouseStore | None = None
    _opened: ClickHouseStore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def clickhouse(self) -> Iterator[ClickHouseStore]:
        if self.store is not None:
            yield self.store
            return
        if self.settings.embedded_clickhouse:
            store = open_store(self.settings)
            try:
                yield store
            finally:
                store.close()
            return
        with self._lock:
            if self._opened is None:
                self._opened = open_store(self.settings)
        yield self._opened

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None


def run_job(context: JobContext, job: str, **options: Any) -> str:
    """Run one job now; a one-line summary of what it did."""
    if job == "replicate":
        return _replicate(context)
    if job == "reconcile":
        return _reconcile(context, bool(options.get("repair", False)))
    if job == "snapshot":
        return _snapshot(context, options.get("out"), int(options.get("keep", 7)))
    raise ValueError(f"unknown job {job!r}; jobs: {', '.join(JOBS)}")


def _replicate(context: JobContext) -> str:
    from jobs.reconcile import drain_if_free

    with context.clickhouse() as store:
        moved = drain_if_free(context.db, store)
    summary = (
        "replication drain skipped: another replicator is active"
        if moved is None
        else f"replication drain moved {moved} events"
    )
    logger.info(summary)
    return summary


def _reconcile(context: JobContext, repair: bool) -> str:
    from jobs.reconcile import reconcile

    with context.clickhouse() as store:
        run = reconcile(context.db, store, repair=repair)
    summary = (
        f"reconcile: {len(run.found.differing)} days differed, {len(run.final.differing)} still"
        f" differ (repair {'on' if repair else 'off'})"
    )
    (logger.info if run.clean else logger.error)(summary)
    return summary


def _snapshot(context: JobContext, out: str | None, keep: int) -> str:
    from jobs.snapshot import prune_snapshots, write_snapshot

    folder = snapshot_folder(context.settings, out)
    snapshot = write_snapshot(context.db, folder, target=context.settings.clickhouse_database)
    prune_snapshots(folder, keep)
    return f"snapshot {snapshot.stamp}: {snapshot.rows} alerts in {folder}"


def register_jobs(broker: AsyncBroker, context: JobContext) -> None:
    """Register every job under its task name (``msd.job.<job>``), running against ``context``."""
    for job in JOBS:
        broker.register_task(_task(context, job), task_name=task_name(job))


def _task(context: JobContext, job: str):
    def run(**options: Any) -> str:
        try:
            return run_job(context, job, **options)
        except Exception:
            logger.exception("scheduled job %s failed", job)
            raise

    run.__name__ = f"job_{job}"
    return run
