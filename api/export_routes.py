"""``GET /api/exports/alerts.csv``: the filtered, ordered alert list as one streamed CSV file.

Rows come from a server-side cursor in chunks and leave as they are read, so an export of any
size holds one chunk in memory. The file is UTF-8 with a byte-order mark, which spreadsheet
programs need to read UTF-8 rather than a local code page; Python reads it with
``encoding="utf-8-sig"``. Text cells that a spreadsheet would run as a formula (starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return) get a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Stream

from api.alert_routes import list_question
from api.params import (
    EXPORT_PARAMETERS,
    CompanyParam,
    DaysParam,
    OrderingParam,
    RegionParam,
    SeverityParam,
    SinceParam,
    StatusParam,
    TextParam,
    UntilParam,
    ViolationTypeParam,
    ZoneParam,
)
from api.routing import answer
from msd.runtime import Services

__all__ = ["EXPORT_COLUMNS", "export_handlers", "guard_formula"]

logger = logging.getLogger(__name__)

EXPORT_COLUMNS = (
    "alert_id",
    "company_name",
    "violation_type",
    "severity",
    "status",
    "amount",
    "region",
    "detected_at",
    "resolved_at",
    "assignee",
    "created_at",
    "updated_at",
    "version",
)
CHUNK_ROWS = 5000
BOM = "\ufeff"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def guard_formula(value: str) -> str:
    """A cell a spreadsheet would evaluate is prefixed with ' so that it shows as text."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return guard_formula(value)
    return value


def csv_chunks(rows: Iterator[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    """The header, then one encoded block per chunk of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    yield (BOM + buffer.getvalue()).encode("utf-8")
    for chunk in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([_cell(value) for value in row] for row in chunk)
        yield buffer.getvalue().encode("utf-8")


@get("/api/exports/alerts.csv", sync_to_thread=True, summary="The filtered alerts as CSV")
def export_alerts(
    request: Request,
    state: State,
    severity: SeverityParam = None,
    status: StatusParam = None,
    region: RegionParam = None,
    company: CompanyParam = None,
    violation_type: ViolationTypeParam = None,
    q: TextParam = None,
    days: DaysParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    tz: ZoneParam = None,
    ordering: OrderingParam = None,
) -> Stream:
    services: Services = state.services
    query = {key: request.query_params.getall(key) for key in request.query_params}
    where, ordering_, _ = list_question(query, EXPORT_PARAMETERS, services.settings.timezone)

    rows = answer(
        "alerts.export",
        services,
        where,
        ordering=ordering_,
        columns=EXPORT_COLUMNS,
        chunk=CHUNK_ROWS,
    )
    today = datetime.now(ZoneInfo(services.settings.timezone)).date()
    return Stream(
        csv_chunks(rows),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="alerts-{today.isoformat()}.csv"',
            "Cache-Control": "no-store",
        },
    )


export_handlers = [export_alerts]
