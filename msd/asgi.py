"""The API as an ASGI application factory, for servers that run several worker processes.

``msd serve`` runs one process. To use more cores, let granian start the workers; each one calls
``create_app`` and builds its own services from the ``MSD_*`` environment variables:

    granian --interface asgi --factory --workers 4 --host 0.0.0.0 --port 8000 msd.asgi:create_app

The workers never replicate (run one ``msd replicate`` beside them) and never take over batch
tasks (``msd worker`` does, from Redis). Server mode only: PostgreSQL, ClickHouse and Redis URLs.

Embedded mode under granian is ``create_embedded_app``, with exactly one worker: the embedded
ClickHouse opens its data folder in one process only, so that worker is the whole service, as
``msd serve`` is (it replicates, runs batch tasks and takes over those a previous run left):

    granian --interface asgi --factory --workers 1 --host 127.0.0.1 --port 8000 \
        msd.asgi:create_embedded_app
"""

from __future__ import annotations

import logging
import os

from litestar import Litestar

from msd.settings import Settings, SettingsError, load_settings

__all__ = ["create_app", "create_embedded_app"]

logger = logging.getLogger(__name__)

# Each worker's own PostgreSQL pool: workers x this is what one API instance may hold open.
WORKER_POOL_SIZE = 10


def create_app() -> Litestar:
    """One worker's application over its own connections, settings read from the environment."""
    from api.app import create_app as create_api
    from msd.runtime import open_services

    settings = load_settings()
    _require_server_mode(settings)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    services = open_services(settings, pool_size=WORKER_POOL_SIZE)
    logger.info("API worker %d ready (no replication in this process)", os.getpid())
    return create_api(services, on_shutdown=[services.close], take_over_tasks=False)


def create_embedded_app() -> Litestar:
    """The whole embedded service in this one worker, settings read from the environment."""
    from api.app import create_app as create_api
    from msd.runtime import open_services

    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    services = open_services(settings)
    services.start_replication()
    logger.info("embedded service in worker %d, data folder %s", os.getpid(), settings.data_dir)
    return create_api(services, on_shutdown=[services.close], take_over_tasks=True)


def _require_server_mode(settings: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("MSD_DATABASE_URL", settings.database_url),
            ("MSD_CLICKHOUSE_URL", settings.clickhouse_url),
            ("MSD_REDIS_URL", settings.redis_url),
        )
        if value is None
    ]
    if missing:
        raise SettingsError(
            f"msd.asgi:create_app serves server mode only, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} unset: the embedded stores, in-process cache "
            "and task queue belong to one process, so run `msd serve` for embedded mode"
        )
