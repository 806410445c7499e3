"""Ingest, replication, replication lag and read latency at one size, in one run.

    python bench/scale.py --alerts 1000000 [--days 730] [--runs 30] [--lag-seconds 30]
                          [--rate 5000] [--data-dir DIR] [--keep] [--json FILE]
                          [--database-url postgresql://root@127.0.0.1:5432/test [--schema S]]

Embedded stores by default (PostgreSQL in the data folder, chdb in-process), as `msd demo` runs.
One run, in this order:

1. ingest: ``--alerts`` alerts of the seeded generator (``ingest.generate``; its distributions
   follow the public CFPB and Violation Tracker files) spread over ``--days`` days, loaded by
   ``load_generated`` through the same COPY path as files. Wall clock, generation included.
   Target: >= 100,000 alerts/s.
2. replication: ``Replicator.drain()`` of every event that load wrote, into ClickHouse.
   Target: >= 100,000 changes/s.
3. replication lag: ``--writers`` threads, each on its own connection and alerts, change severity,
   amount or status of random existing alerts at ``--rate`` changes/s in all for
   ``--lag-seconds``, ``--tx-changes`` alerts per transaction, while the replicator runs in a
   thread as in `msd serve` (``Replicator.run_forever`` with the configured polling interval).
   A change's lag is the time from the return of its commit until a poll of
   ``replication_state`` (every ``--poll-ms``) shows its transaction inside the replicated
   position. Reports p50/p99/max and the change rate the writers achieved.
   Target: p99 <= 1 s at 5,000 changes/s.
4. aggregates: statistics, top companies, risk trends and regions, through ``api.routing.answer``
   as the routes call it (the answer cache is not involved), over the default 30-day window and
   over the whole generated range; one warm-up, then ``--runs`` timed calls each.
   Targets (p50): statistics and top companies <= 50 ms, trends <= 20 ms.
5. the alert list, as ``GET /api/alerts/`` computes it (``api.alert_routes.list_question``, then
   ``answer("alerts.list")``) for no filter, severity=HIGH and severity=HIGH&region=CA: the first
   page, and page ``--deep-page`` (default 10,000) by the cursor the page before it hands out;
   the exact count (``answer("alerts.count")``) and the count as the route makes it
   (``api.routing.list_count``, ClickHouse's above the exact-count limit) with an empty cache,
   each timed on its own; then the same requests end to end
   through the Litestar TestClient with an admin token (page plus count, as the route answers).
   Targets: first page and deep page <= 30 ms. With ``--explain`` the plans of these queries are
   printed (EXPLAIN ANALYZE, BUFFERS).
6. peak RSS of this process (chdb runs in it; the embedded PostgreSQL does not) after the reads
   and at the end.

``--data-dir`` with a folder that already holds exactly ``--alerts`` alerts skips steps 1 and 2
(after replicating anything left unreplicated), so the big sizes are loaded once. Without it the
run uses a fresh temporary folder, removed at the end unless ``--keep``. The embedded PostgreSQL
is stopped at the end unless ``--keep``. ``--database-url`` uses that PostgreSQL server instead
(loopback 127.0.0.1:5432 only) in a fresh schema ``msd_bench_*``, dropped at the end unless
``--keep``; ``--schema`` reuses one kept before, together with its ``--data-dir``.

Prints a table of medians (and p95 / p99 where they say more), and writes every figure to
``--json FILE``. The machine's load shows in every figure: quote runs made on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import resource
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from litestar.testing import TestClient
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from api.alert_routes import list_question
from api.app import create_app
from api.cache import AnswerCache
from api.metrics import Metrics
from api.params import LIMITS, LIST_PARAMETERS
from api.routing import answer, list_count
from ingest.generate import load_generated
from msd.runtime import Services, open_services
from msd.settings import load_settings
from olap.queries import Filters, window_for_days
from workflow import accounts
from workflow.alerts import _where as where_clause
from workflow.alerts import encode_cursor, list_query
from workflow.db import attributed
from workflow.embedded import stop_embedded_postgres

SERVER_HOSTS = ("127.0.0.1", "localhost")
SERVER_PORT = "5432"
LIST_QUESTIONS = {
    "no filter": {},
    "severity=HIGH": {"severity": ["HIGH"]},
    "severity=HIGH&region=CA": {"severity": ["HIGH"], "region": ["CA"]},
}
AGGREGATES = ("statistics", "top_companies", "risk_trends", "regions")
AGGREGATE_TARGETS_MS = {"statistics": 50.0, "top_companies": 50.0, "risk_trends": 20.0}
LIST_TARGET_MS = 30.0
INGEST_TARGET = 100_000.0
REPLICATION_TARGET = 100_000.0
LAG_P99_TARGET_MS = 1000.0
# What the writer changes, one kind per transaction in turn.
CHANGES = (
    "severity = CASE severity WHEN 'LOW' THEN 'MEDIUM' WHEN 'MEDIUM' THEN 'HIGH'"
    " WHEN 'HIGH' THEN 'CRITICAL' ELSE 'LOW' END",
    "amount = coalesce(amount, 0) + 1",
    "status = CASE status WHEN 'PENDING' THEN 'REVIEWING' ELSE 'PENDING' END",
)


@dataclass
class Row:
    """One line of the results table."""

    section: str
    name: str
    value: float
    unit: str
    target: str = ""
    meets: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Results:
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {_line(row)}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)


@dataclass
class Bench:
    services: Services
    folder: Path
    temporary: bool
    server_url: str | None = None
    schema: str | None = None
    fresh_schema: bool = False


def open_bench(args: argparse.Namespace) -> Bench:
    temporary = args.data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="msd-bench-scale-")) if temporary else args.data_dir
    overrides = {"data_dir": str(folder), "rate_limit": "off"}
    server_url, schema, fresh = None, None, False
    if args.database_url:
        server_url = _loopback_server(args.database_url)
        schema, fresh = args.schema or f"msd_bench_{uuid.uuid4().hex[:10]}", args.schema is None
        if fresh:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
        overrides["database_url"] = _schema_url(server_url, schema)
    settings = load_settings(overrides, environ={})
    return Bench(open_services(settings), folder, temporary, server_url, schema, fresh)


def _loopback_server(url: str) -> str:
    parts = conninfo_to_dict(url)
    if parts.get("host") not in SERVER_HOSTS or str(parts.get("port", SERVER_PORT)) != SERVER_PORT:
        raise SystemExit(f"--database-url must name the local server 127.0.0.1:5432, not {url!r}")
    return url


def _schema_url(server_url: str, schema: str) -> str:
    # As a postgresql:// URL, since settings accept only those.
    parts = conninfo_to_dict(make_conninfo(server_url, options=f"-csearch_path={schema}"))
    user = parts.get("user", "root")
    host, port, db = parts.get("host"), parts.get("port", SERVER_PORT), parts.get("dbname", "test")
    return f"postgresql://{user}@{host}:{port}/{db}?options={quote(str(parts['options']))}"


def close_bench(bench: Bench, keep: bool) -> None:
    bench.services.close()
    if bench.server_url is not None:
        if bench.fresh_schema and not keep:
            with psycopg.connect(bench.server_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {bench.schema} CASCADE")
        elif keep:
            print(f"kept schema {bench.schema} (reuse with --schema {bench.schema})")
    if keep:
        print(f"kept {bench.folder} (reuse with --data-dir {bench.folder})")
        return
    stop_embedded_postgres(bench.folder)
    if bench.temporary:
        shutil.rmtree(bench.folder, ignore_errors=True)


def load_or_reuse(bench: Bench, args: argparse.Namespace, results: Results) -> None:
    services = bench.services
    with services.db.reading() as conn:
        held = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    if held == args.alerts:
        left = services.replicator.drain()
        results.note(
            f"{bench.folder} already holds {held:,} alerts: ingest and replication not measured"
            + (f" ({left:,} events left unreplicated were replicated first)" if left else "")
        )
        return
    if held:
        raise SystemExit(
            f"{bench.folder} holds {held:,} alerts, not --alerts {args.alerts:,}: give an empty"
            f" --data-dir, or --alerts {held}"
        )

    print(f"1. ingest: generating and loading {args.alerts:,} alerts over {args.days} days")
    started = time.perf_counter()
    report = load_generated(services.db, args.alerts, seed=args.seed, days=args.days)
    seconds = time.perf_counter() - started
    if report.inserted != args.alerts:
        raise RuntimeError(f"the load inserted {report.inserted:,} of {args.alerts:,} alerts")
    results.add(
        _rate_row("ingest", "COPY load (generation included)", args.alerts, seconds, INGEST_TARGET)
    )

    print("2. replication: draining every event into ClickHouse")
    started = time.perf_counter()
    moved = services.replicator.drain()
    seconds = time.perf_counter() - started
    results.add(_rate_row("replication", "drain()", moved, seconds, REPLICATION_TARGET))


def _rate_row(section: str, name: str, count: int, seconds: float, target: float) -> Row:
    rate = count / seconds
    return Row(
        section,
        name,
        rate,
        "/s",
        f">= {target:,.0f}/s",
        rate >= target,
        {"count": count, "seconds": round(seconds, 3)},
    )


@dataclass(frozen=True)
class Commit:
    at: float
    tx: int
    last_event: int
    changes: int


class _Snapshot:
    """A pg_snapshot's text ``xmin:xmax:xip,...``: which transactions it sees as committed."""

    def __init__(self, text: str) -> None:
        xmin, xmax, xip = text.split(":")
        self.xmin, self.xmax = int(xmin), int(xmax)
        self.running = {int(x) for x in xip.split(",") if x}

    def sees(self, tx: int) -> bool:
        return tx < self.xmin or (tx < self.xmax and tx not in self.running)


def _replicated(state: tuple[str, str | None, str, int], commit: Commit) -> bool:
    """Whether the replicator's position covers every event of the committed transaction."""
    base, target, applied_tx, applied_event = state
    if _Snapshot(base).sees(commit.tx):
        return True
    in_round = target is not None and _Snapshot(target).sees(commit.tx)
    return in_round and (commit.tx, commit.last_event) <= (int(applied_tx), applied_event)


def _write_paced(
    url: str,
    id_range: tuple[int, int],
    args: argparse.Namespace,
    writer: int,
    commits: list[Commit],
    seconds: list[float],
) -> None:
    """Change random alerts at this writer's share of the rate until the time is up."""
    rng = random.Random(args.seed + writer)
    interval = args.tx_changes * args.writers / args.rate
    # Each writer changes its own alerts (id modulo writers), so two never wait on each other.
    ids = range(id_range[0] + writer, id_range[1] + 1, args.writers)
    with psycopg.connect(url) as conn:
        started = time.perf_counter() + writer * interval / args.writers
        for number in range(int(args.lag_seconds / interval)):
            delay = started + number * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            chosen = rng.sample(ids, min(args.tx_changes, len(ids)))
            with conn.transaction():
                attributed(conn, actor="bench", source="bench")
                changed = conn.execute(
                    f"UPDATE alerts SET {CHANGES[number % len(CHANGES)]} WHERE id = ANY(%s)",
                    (chosen,),
                ).rowcount
                tx, last_event = conn.execute(
                    "SELECT pg_current_xact_id()::text, max(event_id) FROM alert_events"
                    " WHERE tx_id = pg_current_xact_id()"
                ).fetchone()
            commits.append(Commit(time.perf_counter(), int(tx), last_event or 0, changed))
        seconds.append(time.perf_counter() - started)


def _watch(
    url: str,
    target: str,
    commits: list[Commit],
    lags: list[tuple[float, int]],
    writing: threading.Event,
    poll: float,
) -> None:
    """Record each commit's lag when a poll first shows it replicated (for 60 s after writing)."""
    seen, waiting, give_up = 0, [], float("inf")
    with psycopg.connect(url, autocommit=True) as conn:
        while writing.is_set() or waiting or seen < len(commits):
            if not writing.is_set():
                give_up = min(give_up, time.perf_counter() + 60)
                if time.perf_counter() > give_up:
                    return
            # Taken before the poll: each of these commits returned before the state was read.
            fresh = commits[seen:]
            seen += len(fresh)
            waiting += fresh
            state = conn.execute(
                "SELECT base_snapshot::text, target_snapshot::text, applied_tx::text,"
                " applied_event FROM replication_state WHERE target = %s",
                (target,),
            ).fetchone()
            now = time.perf_counter()
            still = []
            for commit in waiting:
                if _replicated(state, commit):
                    lags.append((now - commit.at, commit.changes))
                else:
                    still.append(commit)
            waiting = still
            time.sleep(poll)


def measure_lag(services: Services, args: argparse.Namespace, results: Results) -> None:
    print(
        f"3. replication lag: {args.rate:,} changes/s in transactions of {args.tx_changes} from"
        f" {args.writers} connections for {args.lag_seconds:g} s, replicator polling every"
        f" {services.settings.replication_interval:g} s"
    )
    with services.db.reading() as conn:
        id_range = conn.execute("SELECT min(id), max(id) FROM alerts").fetchone()
    commits: list[Commit] = []
    lags: list[tuple[float, int]] = []
    stop, writing = threading.Event(), threading.Event()
    # What Services.start_replication starts, with a stop of its own so that reads follow.
    replicator = threading.Thread(
        target=services.replicator.run_forever,
        args=(stop, services.settings.replication_interval),
        name="replicator",
        daemon=True,
    )
    writing.set()
    watcher = threading.Thread(
        target=_watch,
        args=(
            services.db.url,
            services.replicator.target,
            commits,
            lags,
            writing,
            args.poll_ms / 1000,
        ),
        name="lag-watcher",
        daemon=True,
    )
    replicator.start()
    watcher.start()
    took: list[float] = []
    writers = [
        threading.Thread(
            target=_write_paced,
            args=(services.db.url, id_range, args, number, commits, took),
            name=f"writer-{number}",
        )
        for number in range(args.writers)
    ]
    try:
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
    finally:
        writing.clear()
    if len(took) < len(writers):
        raise RuntimeError("a writer failed (its error is above)")
    seconds = max(took)
    watcher.join(timeout=60)
    stop.set()
    replicator.join(timeout=30)

    changes = sum(c.changes for c in commits)
    achieved = changes / seconds
    sustained = achieved >= 0.95 * args.rate
    results.add(
        Row(
            "lag",
            "changes written",
            achieved,
            "/s",
            f"~{args.rate:,}/s",
            sustained,
            {"changes": changes, "transactions": len(commits), "seconds": round(seconds, 3)},
        )
    )
    if not sustained:
        results.note(f"the writer sustained only {achieved:,.0f} of {args.rate:,} changes/s")
    if len(lags) < len(commits):
        results.note(f"{len(commits) - len(lags)} transactions not seen replicated within 60 s")
    per_change = sorted(lag for lag, count in lags for _ in range(count))
    if not per_change:
        results.note("no change was seen replicated")
        return
    p99 = _percentile(per_change, 0.99) * 1000
    extra = {
        "p50_ms": _percentile(per_change, 0.5) * 1000,
        "p99_ms": p99,
        "max_ms": per_change[-1] * 1000,
        "changes": len(per_change),
    }
    results.add(
        Row(
            "lag",
            "commit to replicated (p99)",
            p99,
            "ms",
            f"<= {LAG_P99_TARGET_MS:,.0f} ms",
            p99 <= LAG_P99_TARGET_MS,
            extra,
        )
    )


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below."""
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def _timed(call: Callable[[], Any], runs: int) -> tuple[dict[str, float], Any]:
    """Milliseconds of ``runs`` calls after one warm-up: p50, p95, min; and the last answer."""
    result = call()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    ordered = sorted(s * 1000 for s in seconds)
    timing = {
        "p50_ms": statistics.median(ordered),
        "p95_ms": _percentile(ordered, 0.95),
        "min_ms": ordered[0],
        "runs": runs,
    }
    return timing, result


def _timing_row(
    section: str, name: str, timing: dict[str, float], target_ms: float | None, **extra: Any
) -> Row:
    p50 = timing["p50_ms"]
    target = f"p50 <= {target_ms:g} ms" if target_ms is not None else ""
    meets = None if target_ms is None else p50 <= target_ms
    return Row(section, name, p50, "ms", target, meets, {**timing, **extra})


def time_aggregates(services: Services, args: argparse.Namespace, results: Results) -> None:
    print(f"4. aggregates from ClickHouse, uncached: {args.runs} runs each after a warm-up")
    zone = services.settings.timezone
    windows = {
        "30 days": window_for_days(30, zone),
        f"all {args.days + 1} days": window_for_days(args.days + 1, zone),
    }
    for label, window in windows.items():
        for name in AGGREGATES:
            timing, answered = _timed(lambda: answer(name, services, window, Filters()), args.runs)
            results.add(
                _timing_row(
                    "aggregates", f"{name}, {label}", timing, AGGREGATE_TARGETS_MS.get(name)
                )
            )
            if name == "statistics" and label.startswith("all") and answered.total != args.alerts:
                results.note(
                    f"statistics over all days count {answered.total:,} alerts, not {args.alerts:,}"
                )


@dataclass
class ListQuestion:
    label: str
    query: dict[str, list[str]]
    count: int = 0
    deep_cursor: str | None = None
    deep_page: int = 0


def time_list(services: Services, args: argparse.Namespace, results: Results) -> list[ListQuestion]:
    size = args.page_size
    print(
        f"5. alert list from PostgreSQL ({size} a page): first page, page {args.deep_page:,}"
        " by cursor, count"
    )
    questions = []
    for label, query in LIST_QUESTIONS.items():
        where, ordering, scope = list_question(query, LIST_PARAMETERS, services.settings.timezone)

        def page(after: str | None = None) -> list[dict[str, Any]]:
            return answer(
                "alerts.list",
                services,
                where,
                limit=size + 1,
                offset=0,
                after=after,
                ordering=ordering,
                scope=scope,
            )

        timing, rows = _timed(page, args.runs)
        results.add(_timing_row("list", f"{label}: first page", timing, LIST_TARGET_MS))
        timing, count = _timed(lambda: answer("alerts.count", services, where), args.runs)
        results.add(_timing_row("list", f"{label}: exact count", timing, None, count=count))
        # As the route counts (ClickHouse above the exact-count limit), with an empty cache.
        timing, counted = _timed(
            lambda: list_count(services, AnswerCache(None, Metrics()), where), args.runs
        )
        results.add(
            _timing_row(
                "list",
                f"{label}: list's count, uncached ({counted.store.value})",
                timing,
                None,
                count=counted.value,
            )
        )

        question = ListQuestion(label, query, count)
        questions.append(question)
        # The deepest page asked for that this set has, reached by the cursor of the page before.
        question.deep_page = min(args.deep_page, -(-count // size))
        if question.deep_page < 2:
            results.note(f"{label}: {count:,} alerts make no second page")
            continue
        before = answer(
            "alerts.list",
            services,
            where,
            limit=1,
            offset=(question.deep_page - 1) * size - 1,
            ordering=ordering,
        )
        question.deep_cursor = encode_cursor(before[0], ordering, scope)
        timing, rows = _timed(lambda: page(question.deep_cursor), args.runs)
        expected = answer(
            "alerts.list",
            services,
            where,
            limit=1,
            offset=(question.deep_page - 1) * size,
            ordering=ordering,
        )
        if rows[0]["id"] != expected[0]["id"]:
            raise RuntimeError(f"{label}: the cursor page does not start where offset paging does")
        results.add(
            _timing_row(
                "list",
                f"{label}: page {question.deep_page:,} by cursor",
                timing,
                LIST_TARGET_MS,
                page=question.deep_page,
            )
        )
    return questions


def time_http(
    services: Services, questions: list[ListQuestion], args: argparse.Namespace, results: Results
) -> None:
    print("   the same through the Litestar TestClient (admin token; page and count)")
    _, token = accounts.create_token(services.db, f"bench-{uuid.uuid4().hex[:8]}", "admin")
    with TestClient(create_app(services)) as client:
        client.headers["Authorization"] = f"Bearer {token}"

        def get(params: dict[str, Any]) -> Any:
            response = client.get("/api/alerts/", params=params)
            if response.status_code != 200:
                raise RuntimeError(
                    f"GET /api/alerts/ {params}: {response.status_code} {response.text[:300]}"
                )
            return response

        for question in questions:
            params = {**question.query, "page_size": args.page_size}
            timing, _ = _timed(lambda: get(params), args.runs)
            results.add(_timing_row("http", f"{question.label}: first page", timing, None))
            if question.deep_cursor is None:
                continue
            deep = {**params, "cursor": question.deep_cursor}
            timing, _ = _timed(lambda: get(deep), args.runs)
            results.add(
                _timing_row(
                    "http", f"{question.label}: page {question.deep_page:,} by cursor", timing, None
                )
            )


def explain(services: Services, questions: list[ListQuestion], args: argparse.Namespace) -> None:
    """Print PostgreSQL's plan of each list query and count, as run, with buffers."""
    zone = services.settings.timezone
    with services.db.reading() as conn:
        for question in questions:
            where, ordering, scope = list_question(question.query, LIST_PARAMETERS, zone)
            queries = {
                "first page": list_query(
                    where, limit=args.page_size + 1, ordering=ordering, scope=scope
                )
            }
            if question.deep_cursor is not None:
                queries[f"page {question.deep_page:,}"] = list_query(
                    where,
                    limit=args.page_size + 1,
                    after=question.deep_cursor,
                    ordering=ordering,
                    scope=scope,
                )
            # The count's statement as count_alerts builds it.
            condition, params = where_clause(where)
            queries["count"] = (
                sql.SQL("SELECT count(*) FROM alerts WHERE {}").format(condition),
                params,
            )
            for name, (query, params) in queries.items():
                plan = conn.execute(
                    sql.SQL("EXPLAIN (ANALYZE, BUFFERS) {}").format(query), params
                ).fetchall()
                print(f"\n--- {question.label}: {name}")
                print("\n".join(line for (line,) in plan))


def rss_row(moment: str) -> Row:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Row("memory", f"peak RSS {moment}", peak_kib / 1024, "MiB")


def _line(row: Row) -> str:
    value = f"{row.value:,.0f}" if row.unit == "/s" or row.value >= 1000 else f"{row.value:.1f}"
    spread = ""
    if "p95_ms" in row.extra:
        spread = f"  (p95 {row.extra['p95_ms']:.1f})"
    elif "p50_ms" in row.extra:
        spread = (
            f"  (p50 {row.extra['p50_ms']:.0f}, max {row.extra['max_ms']:.0f},"
            f" {row.extra['changes']:,} changes)"
        )
    verdict = {True: "ok", False: "MISSED", None: ""}[row.meets]
    return (
        f"{row.section:<12} {row.name:<44} {value:>10} {row.unit:<3}{spread:<32}"
        f" {row.target:<16} {verdict}"
    ).rstrip()


def print_table(results: Results) -> None:
    config = results.config
    print(
        f"\n{config['alerts']:,} alerts over {config['days']} days, {config['stores']};"
        f" medians of {config['runs']} runs"
    )
    for row in results.rows:
        print(_line(row))
    for note in results.notes:
        print(f"note: {note}")


def write_json(path: Path, results: Results) -> None:
    document = {
        "config": results.config,
        "rows": [asdict(row) for row in results.rows],
        "notes": results.notes,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=730, help="days the generator spreads over")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=30, help="timed calls of each read")
    parser.add_argument("--lag-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=5000, help="changes per second while lagging")
    parser.add_argument("--tx-changes", type=int, default=50, help="changes per transaction")
    parser.add_argument("--writers", type=int, default=2, help="connections writing changes")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="how often lag is looked at")
    parser.add_argument("--page-size", type=int, default=LIMITS.default_page_size)
    parser.add_argument("--deep-page", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, help="reuse (or fill) this folder")
    parser.add_argument("--database-url", help="a PostgreSQL server on 127.0.0.1:5432")
    parser.add_argument("--schema", help="with --database-url: reuse this kept schema")
    parser.add_argument("--keep", action="store_true", help="keep the data and the servers")
    parser.add_argument("--explain", action="store_true", help="print the list's query plans")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    if args.schema and not args.database_url:
        parser.error("--schema needs --database-url")
    if args.writers < 1 or args.tx_changes < 1 or args.rate < 1:
        parser.error("--writers, --tx-changes and --rate must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    # The app logs every request at INFO; the figures are the output here.
    logging.disable(logging.INFO)
    bench = open_bench(args)
    results = Results(
        {
            "alerts": args.alerts,
            "days": args.days,
            "seed": args.seed,
            "runs": args.runs,
            "lag_seconds": args.lag_seconds,
            "rate": args.rate,
            "tx_changes": args.tx_changes,
            "writers": args.writers,
            "page_size": args.page_size,
            "deep_page": args.deep_page,
            "stores": "PostgreSQL server" if args.database_url else "embedded PostgreSQL, chdb",
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "replication_interval": bench.services.settings.replication_interval,
            "replication_batch": bench.services.settings.replication_batch,
        }
    )
    try:
        load_or_reuse(bench, args, results)
        if args.lag_seconds > 0:
            measure_lag(bench.services, args, results)
        time_aggregates(bench.services, args, results)
        questions = time_list(bench.services, args, results)
        results.add(rss_row("after the reads"))
        time_http(bench.services, questions, args, results)
        if args.explain:
            explain(bench.services, questions, args)
        results.add(rss_row("at the end"))
    finally:
        close_bench(bench, args.keep)
    print_table(results)
    if args.json:
        write_json(args.json, results)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
