"""The running parts of one process: the PostgreSQL pool, the ClickHouse store, the replicator."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field

from msd.settings import Settings, SettingsError, mask_url
from olap.replicator import LoopWatermarkReader, Replicator, Watermark
from olap.shared_read import LoopSharedRead
from olap.store import ClickHouseStore, open_store
from workflow.db import Database, open_pool

__all__ = ["Services", "open_services"]

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    store: ClickHouseStore
    replicator: Replicator
    # A PostgreSQL read replica for the reads that may lag (MSD_DATABASE_REPLICA_URL), if any.
    replica: Database | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _loop_watermark: LoopSharedRead[Watermark] | None = None
    _watermark_reader: LoopWatermarkReader | None = None

    @property
    def reader(self) -> Database:
        """Where lag-tolerant reads go: the replica when there is one, else the primary."""
        return self.replica if self.replica is not None else self.db

    def watermark(self) -> Watermark:
        return self.replicator.watermark()

    async def watermark_on_loop(self) -> Watermark:
        """``watermark`` for a coroutine: from memory when this process knows it, otherwise one
        read shared by every coroutine of the loop asking at that moment, so that a burst of
        requests costs one PostgreSQL round trip."""
        remembered = self.replicator.remembered_watermark()
        if remembered is not None:
            return remembered
        if self._loop_watermark is None:
            reader = LoopWatermarkReader(
                self.db.url, self.replicator.target, self.settings.database_timeout_seconds
            )
            self._watermark_reader = reader
            self._loop_watermark = LoopSharedRead(lambda: self._read_watermark(reader))
        return await self._loop_watermark()

    async def close_on_loop(self) -> None:
        """Release what ``watermark_on_loop`` opened on the running loop (at app shutdown)."""
        if self._watermark_reader is not None:
            await self._watermark_reader.close()

    async def _read_watermark(self, reader: LoopWatermarkReader) -> Watermark:
        if self.replicator.remembers_watermark:
            return await asyncio.to_thread(self.watermark)  # a read this process then remembers
        return await reader.read()

    def start_replication(self) -> None:
        """Replicate in a background thread of this process until ``close``."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self.replicator.run_forever,
            args=(self._stop, self.settings.replication_interval),
            name="replicator",
            daemon=True,
        )
        self._thread.start()
        logger.info(
            "replicating in this process every %.2fs at most", self.settings.replication_interval
        )

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.replicator.release()
        self.store.close()
        if self.replica is not None:
            self.replica.close()
        self.db.close()


def check_redis(url: str | None) -> None:
    """Refuse to start against a Redis that does not answer (later outages only degrade)."""
    if url is None:
        return
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        raise SettingsError(
            f"cannot reach Redis at MSD_REDIS_URL={mask_url(url)}: {error}"
        ) from None
    finally:
        client.close()


def open_services(settings: Settings, *, pool_size: int = 10) -> Services:
    """Connect to both stores (starting the embedded ones as needed) and migrate them."""
    check_redis(settings.redis_url)
    db = open_pool(settings, max_size=pool_size)
    try:
        store = open_store(settings)
    except Exception:
        db.close()
        raise
    replicator = Replicator(db, store, batch_size=settings.replication_batch)
    replica = _open_replica(settings.database_replica_url, pool_size)
    return Services(settings, db, store, replicator, replica)


def _open_replica(url: str | None, pool_size: int) -> Database | None:
    """The read replica's pool; never migrated here (it follows the primary's schema)."""
    if url is None:
        return None
    from workflow.db import connect

    try:
        connect(url).close()
    except SettingsError as error:
        raise SettingsError(
            str(error).replace("MSD_DATABASE_URL", "MSD_DATABASE_REPLICA_URL", 1)
        ) from None
    return Database(url, max_size=pool_size)
