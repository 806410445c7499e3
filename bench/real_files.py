"""Ingest and replication rates on the real public files, on embedded PostgreSQL and ClickHouse.

    python bench/real_files.py [--shared ../shared/data] [--runs 3]

Each run starts from an empty data folder: ingest each file (COPY into staging, set-wise upsert,
change events written by trigger), then replicate every event to the embedded ClickHouse. Prints
the median rows/s and events/s over the runs.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from ingest import ingest_files
from msd.runtime import open_services
from msd.settings import load_settings
from workflow.embedded import stop_embedded_postgres

FILES = {
    "cfpb": "cfpb_consumer_complaints/cfpb_complaints_fullschema_sample.csv",
    "violation_tracker": (
        "violation_tracker_federal_penalties/violation_tracker_federal_penalties.csv"
    ),
}


def one_run(shared: Path, name: str) -> tuple[float, float, int, int]:
    folder = Path(tempfile.mkdtemp(prefix="msd-bench-"))
    settings = load_settings({"data_dir": str(folder)}, environ={})
    services = open_services(settings)
    try:
        started = time.perf_counter()
        report = ingest_files(services.db, [shared / FILES[name]], rejects_path=folder / "r.csv")
        ingest_seconds = time.perf_counter() - started

        started = time.perf_counter()
        events = services.replicator.drain()
        replicate_seconds = time.perf_counter() - started
    finally:
        services.close()
        stop_embedded_postgres(folder)
    return report.read / ingest_seconds, events / replicate_seconds, report.read, events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--shared", default=str(Path(__file__).resolve().parents[2] / "shared/data")
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    for name in FILES:
        runs = [one_run(Path(args.shared), name) for _ in range(args.runs)]
        rows, events = runs[0][2], runs[0][3]
        print(
            f"{name}: {rows:,} rows, {events:,} events; median ingest "
            f"{statistics.median(r[0] for r in runs):,.0f} rows/s, median replication "
            f"{statistics.median(r[1] for r in runs):,.0f} events/s over {args.runs} runs"
        )


if __name__ == "__main__":
    main()
