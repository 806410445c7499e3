"""Streaming readers: each file becomes its column names and numbered records, never all at once.

Records are ``(line, values)``: the physical line where the record starts (1-based, the header is
line 1) for CSV, the line for JSON Lines, the row number (1-based) for Parquet. The values are a
row in the order of the source's columns (CSV, Parquet), or a dict keyed by column_key(name) for
JSON Lines, whose lines may name different keys. A record that cannot be read at all (wrong
number of CSV fields, bad JSON) is a ``(line, RowError)`` so that the caller rejects it and goes
on.
"""

from __future__ import annotations

import csv
import gzip
import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.errors import IngestError, RowError
from ingest.formats import column_key

__all__ = ["Item", "Source", "arrow_source", "open_source"]

logger = logging.getLogger(__name__)

Values = Sequence[Any] | dict[str, Any]
Item = tuple[int, Values | RowError]

_PARQUET_BATCH = 20_000
# CSV fields longer than csv's default 128 KiB limit are still read, then rejected by length.
csv.field_size_limit(16 * 1024 * 1024)


@dataclass
class Source:
    """One input: a label for messages, its column names and an iterator over its records;
    ``keyed`` when the records are dicts rather than rows in the order of ``columns``."""

    label: str
    columns: list[str]
    items: Iterator[Item]
    close: Callable[[], None] = lambda: None
    keyed: bool = False

    def record(self, values: Values) -> dict[str, Any]:
        """The record's values keyed by column_key(name), as the rejects file shows them."""
        if isinstance(values, dict):
            return values
        return dict(zip(map(column_key, self.columns), values))


def open_source(path: Path) -> Source:
    """The reader for ``path`` chosen by its extension; IngestError names an unknown one."""
    name = path.name.lower()
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    if name.endswith((".csv", ".csv.gz")):
        return _csv_source(path)
    if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
        return _jsonl_source(path)
    if name.endswith(".parquet"):
        return _parquet_source(path)
    raise IngestError(f"{path}: unknown file type; use .csv, .csv.gz, .jsonl, .ndjson or .parquet")


def arrow_source(label: str, batches: Iterable[pa.RecordBatch], columns: list[str]) -> Source:
    """Records from Arrow record batches, numbered by row from 1 (Parquet, the generator)."""
    return Source(label, columns, _arrow_items(batches, columns))


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig drops a byte-order mark; newline="" lets csv see quoted newlines and CRLF itself.
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _csv_source(path: Path) -> Source:
    handle = _open_text(path)
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError) as error:
        handle.close()
        raise IngestError(f"{path}: cannot read the CSV header: {error}") from None
    if not header:
        handle.close()
        raise IngestError(f"{path}: the file is empty; a CSV needs a header line")

    columns = [name.strip() for name in header]
    return Source(str(path), columns, _csv_items(reader, columns, path), handle.close)


def _csv_items(reader: Any, columns: list[str], path: Path) -> Iterator[Item]:
    width = len(columns)
    start = reader.line_num + 1
    try:
        for row in reader:
            if len(row) == width:
                if any(row):
                    yield start, row
            elif row and any(row):
                yield start, RowError(f"the line has {len(row)} fields, the header has {width}")
            start = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError) as error:
        raise IngestError(f"{path}: line {start}: cannot read CSV: {error}") from None


def _jsonl_source(path: Path) -> Source:
    handle = _open_text(path)
    items = _jsonl_items(handle, path)
    leading = _until_object(items)
    last = leading[-1][1] if leading else None
    columns = list(last) if isinstance(last, dict) else []
    return Source(str(path), columns, _chained(leading, items), handle.close, keyed=True)


def _jsonl_items(handle: IO[str], path: Path) -> Iterator[Item]:
    # Numbers are read as Decimal so that an amount keeps every digit the file wrote.
    decoder = msgspec.json.Decoder(float_hook=Decimal)
    try:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, _json_values(decoder, line)
    except UnicodeDecodeError as error:
        raise IngestError(f"{path}: not UTF-8 text: {error}") from None


def _json_values(decoder: msgspec.json.Decoder, line: str) -> dict[str, Any] | RowError:
    try:
        value = decoder.decode(line)
    except msgspec.DecodeError as error:
        return RowError(f"the line is not valid JSON: {error}")
    if not isinstance(value, dict):
        return RowError(f"the line holds a JSON {type(value).__name__}, not an object")

    nested = [key for key, item in value.items() if isinstance(item, dict | list)]
    if nested:
        return RowError(f"field {nested[0]!r} holds a nested JSON value, not a plain one")
    return {column_key(key): item for key, item in value.items()}


def _parquet_source(path: Path) -> Source:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise IngestError(f"{path}: cannot read Parquet: {error}") from None

    columns = list(parquet.schema_arrow.names)
    batches = parquet.iter_batches(batch_size=_PARQUET_BATCH)
    return Source(str(path), columns, _arrow_items(batches, columns), parquet.close)


def _arrow_items(batches: Iterable[pa.RecordBatch], columns: list[str]) -> Iterator[Item]:
    number = 0
    for batch in batches:
        for row in zip(*_aligned_values(batch, columns)):
            number += 1
            yield number, row


def _aligned_values(batch: pa.RecordBatch, columns: list[str]) -> list[list[Any]]:
    # Each of ``columns`` from the batch's column of that name (the last one, as a dict of the
    # row would keep it), or empty where the batch lacks it.
    index = {column_key(name): i for i, name in enumerate(batch.schema.names)}
    empty = [None] * batch.num_rows
    wanted = [index.get(column_key(name)) for name in columns]
    return [empty if i is None else _python_values(batch.column(i)) for i in wanted]


def _python_values(column: pa.Array) -> list[Any]:
    # Arrow keeps zoned timestamps as UTC instants; reading them without the zone gives the
    # same instants as naive UTC datetimes (which the parsers read as UTC) several times faster.
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = column.cast(pa.timestamp(column.type.unit))
    return column.to_pylist()


def _until_object(items: Iterator[Item]) -> list[Item]:
    # The columns come from the first record that is a JSON object; lines before it are kept
    # to be rejected in order.
    leading: list[Item] = []
    for item in items:
        leading.append(item)
        if isinstance(item[1], dict):
            break
    return leading


def _chained(leading: list[Item], rest: Iterator[Item]) -> Iterator[Item]:
    yield from leading
    yield from rest

