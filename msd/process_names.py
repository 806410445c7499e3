"""How an ``msd`` process names itself to others that share its data folder.

The embedded ClickHouse folder lock and the embedded PostgreSQL's connections carry the name,
so that a command refused because of another process can say which one to stop.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["command_line", "process_name", "this_process"]


def command_line() -> str:
    """This process's command as the user typed it, e.g. ``msd serve --port 9000``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if name.endswith(".py"):  # run as `python -m msd.cli`: the same command as `msd`
        name = "msd"
    return " ".join([name, *sys.argv[1:]])


def process_name(pid: int, command: str) -> str:
    return f"process {pid} ({command})"


def this_process() -> str:
    """This process by id and command, its flags left out: ``process 1234 (msd serve)``.

    Short enough for PostgreSQL's application_name (63 bytes; longer ones are cut).
    """
    program_and_command = command_line().split()[:2]
    if len(program_and_command) == 2 and program_and_command[1].startswith("-"):
        program_and_command.pop()
    return process_name(os.getpid(), " ".join(program_and_command))
