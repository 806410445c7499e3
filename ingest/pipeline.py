"""Loading files into PostgreSQL: read, map, validate, reject, stage, upsert and report.

Every file is opened and its format settled before anything is written, so a file whose
format cannot be told stops the run before the first row lands. Files then load one after
the other. A file is read to its end into staging before its first upsert, so one that turns
out unreadable part-way loads nothing; the upsert then commits chunk by chunk, and a failure
there leaves the chunks before it committed (a re-run finishes the job: unchanged rows are
skipped).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from ingest.alert import Alert, validate_alert
from ingest.errors import IngestError, RowError
from ingest.formats import FormatSpec, check_columns, detect_format, load_format
from ingest.mapping import RowMapper
from ingest.progress import Progress
from ingest.readers import Source, Values, open_source
from ingest.rejects import RejectWriter, default_rejects_path
from ingest.report import DUPLICATES_LISTED, FileReport, IngestReport
from ingest.staging import LoadOutcome, StagedRow, load_rows
from workflow.db import Database

__all__ = ["CHUNK_ROWS", "ingest_files", "load_source"]

logger = logging.getLogger(__name__)

# Rows per COPY and per upsert transaction: large enough for set-wise speed, small enough
# that a 1M-row file never holds more than this in memory or in one transaction.
CHUNK_ROWS = 50_000


@dataclass
class _Counts:
    read: int = 0
    rejected: int = 0
    last_seq: int = 0


def ingest_files(
    db: Database,
    paths: list[Path],
    *,
    source_format: str | None = None,
    actor: str = "cli",
    rejects_path: Path | None = None,
    progress: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> IngestReport:
    """Load alert files into PostgreSQL and report what happened to every row.

    ``source_format`` is a built-in format name or a .toml path; None detects each file's
    format from its columns. Rejected rows go to ``rejects_path``, or by default to
    ``<file>.rejects.csv`` beside each input (in the current folder when that is read-only).
    ``chunk_rows`` rows are copied and upserted per transaction.
    """
    started = time.perf_counter()
    planned = _plan_all([Path(path) for path in paths], source_format)
    shared = RejectWriter(rejects_path) if rejects_path is not None else None
    try:
        files = [_load_planned(db, plan, shared, actor, progress, chunk_rows) for plan in planned]
    finally:
        _close(planned, shared)

    report = IngestReport.of(files, time.perf_counter() - started)
    logger.debug("ingest: %s", report.summary())
    return report


def load_source(
    db: Database,
    source: Source,
    spec: FormatSpec,
    rejects: RejectWriter,
    *,
    actor: str,
    progress: bool = False,
    chunk: int = CHUNK_ROWS,
) -> FileReport:
    """Load one opened source with its format: the single path every load goes through."""
    started = time.perf_counter()
    counts = _Counts()
    meter = Progress(source.label, enabled=progress)
    mapper = RowMapper(spec, source.columns, source.label, keyed=source.keyed)
    # One clock reading per file: whether a row is "in the future" does not depend on how far
    # into the file it sits.
    now = datetime.now(timezone.utc)
    rows = _staged_rows(source, mapper, rejects, counts, meter, now)

    note = f"{spec.name}: {source.label}"
    outcome = load_rows(db, rows, actor=actor, note=note, chunk=chunk, meter=meter)
    meter.finish()

    report = _file_report(source, spec, counts, outcome, rejects)
    report.elapsed_seconds = time.perf_counter() - started
    _log_file(report)
    return report


def _file_report(
    source: Source, spec: FormatSpec, counts: _Counts, outcome: LoadOutcome, rejects: RejectWriter
) -> FileReport:
    return FileReport(
        path=source.label,
        source_format=spec.name,
        read=counts.read,
        inserted=outcome.inserted,
        updated=outcome.updated,
        unchanged=outcome.staged - outcome.inserted - outcome.updated,
        rejected=counts.rejected,
        duplicates=len(outcome.superseded),
        duplicate_ids=list(dict.fromkeys(i for i, _ in outcome.superseded))[:DUPLICATES_LISTED],
        rejects_path=str(rejects.path) if counts.rejected else None,
    )


@dataclass
class _Plan:
    path: Path
    source: Source
    spec: FormatSpec


def _plan_all(paths: list[Path], source_format: str | None) -> list[_Plan]:
    if not paths:
        raise IngestError("no files to ingest were given")

    chosen = load_format(source_format) if source_format is not None else None
    planned: list[_Plan] = []
    try:
        for path in paths:
            planned.append(_plan(path, chosen))
    except BaseException:
        _close(planned, None)
        raise
    return planned


def _plan(path: Path, chosen: FormatSpec | None) -> _Plan:
    source = open_source(path)
    try:
        spec = chosen or detect_format(source.columns, str(path))
        check_columns(spec, source.columns, str(path))
    except BaseException:
        source.close()
        raise

    logger.info("%s: format %s", path, spec.name)
    return _Plan(path, source, spec)


def _load_planned(
    db: Database, plan: _Plan, shared: RejectWriter | None, actor: str, progress: bool,
    chunk: int,
) -> FileReport:
    rejects = shared or RejectWriter(default_rejects_path(plan.path))
    try:
        return load_source(db, plan.source, plan.spec, rejects, actor=actor, progress=progress,
                           chunk=chunk)
    finally:
        if shared is None:
            rejects.close()


def _staged_rows(
    source: Source,
    mapper: RowMapper,
    rejects: RejectWriter,
    counts: _Counts,
    meter: Progress,
    now: datetime,
) -> Iterator[StagedRow]:
    for line, values in source.items:
        counts.read += 1
        meter.advance()
        try:
            alert = _alert(mapper, values, now)
        except RowError as error:
            counts.rejected += 1
            record = None if isinstance(values, RowError) else source.record(values)
            rejects.write(source.label, line, str(error), record)
            continue

        counts.last_seq += 1
        yield _staged(counts.last_seq, line, alert)


def _alert(mapper: RowMapper, values: Values | RowError, now: datetime) -> Alert:
    if isinstance(values, RowError):
        raise values
    return validate_alert(mapper.map(values), now=now)


def _staged(seq: int, line: int, alert: Alert) -> StagedRow:
    return (seq, line, alert.alert_id, alert.company_name, alert.violation_type, alert.severity,
            alert.status, alert.amount, alert.region, alert.detected_at, alert.resolved_at,
            alert.assignee)


def _close(planned: list[_Plan], shared: RejectWriter | None) -> None:
    for plan in planned:
        plan.source.close()
    if shared is not None:
        shared.close()


def _log_file(report: FileReport) -> None:
    logger.info(
        "%s (%s): read %d, inserted %d, updated %d, unchanged %d, rejected %d, duplicates %d"
        " in %.2f s", report.path, report.source_format, report.read, report.inserted,
        report.updated, report.unchanged, report.rejected, report.duplicates,
        report.elapsed_seconds,
    )
    if report.duplicates:
        logger.warning("%s: %d rows were replaced by a later row with the same alert_id",
                       report.path, report.duplicates)
