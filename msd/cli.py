"""The ``msd`` command: every part of the service is one of its subcommands."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from msd.account_commands import add_account_commands
from msd.settings import SETTINGS, Settings, SettingsError, load_settings, mask_url
from workflow.accounts import AccountError

__all__ = ["main"]

logger = logging.getLogger("msd")

DEMO_ALERTS = 100_000
SHUTDOWN_GRACE_SECONDS = 3
# The exit code of a command that could not run as given; its one line says why.
USAGE_ERROR = 2


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also read from MSD_<NAME>)")
    for setting in SETTINGS:
        flag = "--" + setting.name.replace("_", "-")
        default = f" (default {setting.default})" if setting.default else ""
        group.add_argument(flag, dest=setting.name, default=None, help=setting.help + default)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings({s.name: getattr(args, s.name, None) for s in SETTINGS})


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "uvicorn.access", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from msd.runtime import open_services

    services = open_services(settings, pool_size=2)
    services.close()
    print(f"PostgreSQL and ClickHouse schemas are up to date ({_where(settings)})")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from msd.account_commands import refuse_demo_on_network
    from msd.runtime import open_services

    services = open_services(settings)
    try:
        refuse_demo_on_network(settings, services.db)
    except SettingsError:
        services.close()
        raise
    if not args.no_replicate:
        services.start_replication()
    return _serve(services, _start_schedules(services) if args.schedule else [])


def _start_schedules(services) -> list[Callable[[], None]]:  # type: ignore[no-untyped-def]
    """Run the scheduled jobs in this process, sharing its open stores; the stop to call."""
    from jobs.scheduler import InProcessScheduler
    from jobs.schedules import load_schedules

    scheduler = InProcessScheduler(services, load_schedules(services.settings.schedule_file))
    scheduler.start()
    return [scheduler.stop]


def _serve(services, stops: Sequence[Callable[[], None]] = ()) -> int:
    import uvicorn

    from api.app import create_app

    settings = services.settings
    app = create_app(services, on_shutdown=[*stops, services.close], take_over_tasks=True)
    print(
        f"serving on http://{settings.host}:{settings.port}/  (the dashboard; API under "
        f"/api/, OpenAPI at /schema/openapi.json); Ctrl-C stops",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # Open dashboards hold live streams that never end by themselves; without a bound,
        # Ctrl-C would wait for every browser tab to close.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    uvicorn.Server(config).run()
    return 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from ingest import ingest_files
    from workflow.db import open_pool

    db = open_pool(settings, max_size=2)
    try:
        report = ingest_files(
            db,
            [Path(p) for p in args.files],
            source_format=args.format,
            # The audit trail names who ran the command on this machine.
            actor=f"cli {getpass.getuser()}",
            rejects_path=Path(args.rejects) if args.rejects else None,
            progress=sys.stderr.isatty(),
        )
    finally:
        db.close()
    print(report.summary())
    _replicate_now_if_possible(settings)
    return 0 if report.rejected == 0 else 3


def _replicate_now_if_possible(settings: Settings) -> None:
    """Replicate what was just written, unless a running replicator will (say which)."""
    from msd.runtime import open_services
    from olap.store import StoreBusyError, StoreUnavailableError

    try:
        services = open_services(settings, pool_size=2)
    except StoreBusyError as error:
        print(f"the embedded ClickHouse is open in {error.holder}, which replicates these changes")
        return
    try:
        if not services.replicator.acquire(wait=False):
            print("a running replicator will move these changes to ClickHouse")
            return
        moved = services.replicator.drain()
        print(f"replicated {moved} change events to ClickHouse")
    except StoreUnavailableError as error:
        print(f"not replicated yet: {error}; the changes wait in PostgreSQL for a replicator")
    finally:
        services.close()


def cmd_replicate(settings: Settings, args: argparse.Namespace) -> int:
    from msd.runtime import open_services

    services = open_services(settings, pool_size=2)
    try:
        if args.once:
            print(f"replicated {services.replicator.drain()} change events")
            return 0
        print(f"replicating to ClickHouse ({_where(settings)}); Ctrl-C stops", flush=True)
        stop = threading.Event()
        try:
            services.replicator.run_forever(stop, settings.replication_interval)
        except KeyboardInterrupt:
            stop.set()
        return 0
    finally:
        services.close()


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Batch tasks (POST /api/alerts/batch_process/) from Redis; the work is in jobs.worker."""
    from jobs.broker import BrokerConfig
    from jobs.worker import run_worker

    config = BrokerConfig(queue_name=args.queue, idle_timeout_ms=int(args.idle_timeout * 1000))
    return run_worker(settings, concurrency=args.concurrency, config=config)


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when ClickHouse equals PostgreSQL (after the repair, with --repair), else 1."""
    from jobs.reconcile import reconcile
    from msd.runtime import open_services
    from olap.reconcile import ReconcileError

    services = open_services(settings, pool_size=4)
    try:
        run = reconcile(services.db, services.store, repair=args.repair)
    except ReconcileError as error:
        print(f"msd: error: {error}", file=sys.stderr)
        return 2
    finally:
        services.close()
    final = run.final
    print(
        f"{final.days_compared} days compared at watermark {final.watermark}:"
        f" {len(run.found.differing)} differed, {run.repaired.events} correction events written,"
        f" {len(final.differing)} still differ"
    )
    return 0 if run.clean else 1


def cmd_snapshot(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.scheduled import snapshot_folder
    from jobs.snapshot import prune_snapshots, write_snapshot
    from workflow.db import open_pool

    if args.keep is not None and args.keep < 1:
        raise SettingsError(f"--keep {args.keep}: keep at least the newest snapshot (1)")
    folder = snapshot_folder(settings, args.out)
    db = open_pool(settings, max_size=2)
    try:
        snapshot = write_snapshot(db, folder, target=settings.clickhouse_database)
    finally:
        db.close()
    if args.keep is not None:
        prune_snapshots(folder, args.keep)
    print(f"wrote {snapshot.rows:,} alerts: {snapshot.manifest_path}")
    return 0


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.schedules import listing, load_schedules

    schedules = load_schedules(settings.schedule_file)
    if args.list:
        print(listing(schedules, settings.schedule_file))
        return 0
    from jobs.scheduler import run_scheduler

    return run_scheduler(settings, schedules, queue_name=args.queue)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from msd.account_commands import DEMO_USER, create_demo_credentials
    from msd.runtime import open_services
    from msd.settings import is_loopback

    if not is_loopback(settings.host):
        raise SettingsError(
            f"msd demo prints admin credentials, so it serves on loopback only, not "
            f"MSD_HOST={settings.host}; for a network service add users with `msd user add` "
            "and run `msd serve`"
        )
    services = open_services(settings)
    if args.from_files:
        from ingest import ingest_files

        report = ingest_files(
            services.db,
            [Path(p) for p in args.from_files],
            actor="demo",
            progress=sys.stderr.isatty(),
        )
        print(report.summary())
    elif (stored := _alert_count(services)) == 0:
        from ingest.generate import load_generated

        print(f"loading {args.alerts:,} generated demo alerts (seed {args.seed})...", flush=True)
        # Up to this moment, so that today has alerts too and the 30-day default window shows
        # a full month.
        now = datetime.now(timezone.utc)
        print(load_generated(services.db, args.alerts, seed=args.seed, now=now).summary())
    else:
        print(
            f"the data folder {settings.data_dir} already holds {stored:,} alerts: loading "
            "no demo data (use a new --data-dir for a fresh demo, or --from FILE to add files)"
        )
    moved = services.replicator.drain()
    print(f"replicated {moved:,} change events to ClickHouse")
    password, token = create_demo_credentials(services.db)
    print(
        f"sign in at http://{settings.host}:{settings.port}/signin as {DEMO_USER} with password "
        f"{password}\nAPI token (admin): {token}\n(both shown once; a new demo run makes new ones)",
        flush=True,
    )
    services.start_replication()
    # The demo is the whole product on one machine: its scheduled jobs run here too.
    return _serve(services, _start_schedules(services))


def _alert_count(services) -> int:
    with services.db.reading() as conn:
        count = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
        conn.rollback()
    return int(count)


def cmd_chart(settings: Settings, args: argparse.Namespace) -> int:
    """Draw one dashboard chart to a file, with the code and parameters of /api/charts/."""
    from api.aggregate_routes import read_question
    from api.chart_routes import chart_bytes
    from api.errors import ApiError
    from api.params import CHART_PARAMETERS, check_known, parse_chart_size
    from msd.runtime import open_services
    from ui.fonts import use_font_dir

    out = Path(args.out)
    fmt = args.format or _format_of(out)
    query = {
        name: values for name in CHART_PARAMETERS if (values := _as_list(getattr(args, name, None)))
    }
    try:
        check_known(query, CHART_PARAMETERS)
        window, filters = read_question(query, CHART_PARAMETERS, settings.timezone)
        size = parse_chart_size(query)
    except ApiError as error:
        flag = "--" + error.errors[0].get("parameter", "?").replace("_", "-")
        raise SettingsError(f"{flag}: {error.detail}") from None

    use_font_dir(settings.chart_font_dir)
    services = open_services(settings, pool_size=2)
    try:
        body = chart_bytes(services, args.name, fmt, window, filters, size)
    finally:
        services.close()
    out.write_bytes(body)
    print(f"wrote chart {args.name} ({fmt}, {len(body):,} bytes) to {out}")
    return 0


def _format_of(out: Path) -> str:
    """The chart format the extension of ``out`` names (--format itself is checked by argparse)."""
    from ui.charts import FORMATS

    extension = out.suffix.lstrip(".").lower()
    if extension in FORMATS:
        return extension
    problem = (
        f"the extension {out.suffix} is not a chart format ({', '.join(FORMATS)})"
        if extension
        else "has no extension to tell the chart format from"
    )
    raise SettingsError(
        f"--out {out}: {problem}; give it a .png, .svg, .html or .json name, or pass --format"
    )


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _add_chart_flags(chart: argparse.ArgumentParser) -> None:
    from ui.charts import CHARTS, FORMATS

    chart.add_argument("name", choices=list(CHARTS), help="which chart")
    chart.add_argument("--out", required=True, help="file to write")
    chart.add_argument("--format", choices=FORMATS, help="default: from the --out extension")
    group = chart.add_argument_group("filters and window (as the API's parameters)")
    for name in ("severity", "status", "region", "company"):
        group.add_argument(f"--{name}", action="append", help=f"{name}; repeat for several")
    group.add_argument(
        "--violation-type", dest="violation_type", action="append", help="repeat for several"
    )
    group.add_argument("--q", help="free text in company name or violation type")
    for name in ("days", "since", "until", "tz", "width", "height", "scale"):
        group.add_argument(f"--{name}", help=f"as the API's {name}")


def cmd_stop(settings: Settings, args: argparse.Namespace) -> int:
    from workflow.embedded import ensure_unused, stop_embedded_postgres

    if settings.database_url is not None:
        print("MSD_DATABASE_URL names a server: nothing embedded to stop")
        return 0
    if not args.force:
        ensure_unused(settings.data_dir)
    stopped = stop_embedded_postgres(settings.data_dir)
    print(
        "stopped the embedded PostgreSQL" if stopped else "the embedded PostgreSQL was not running"
    )
    return 0


def _where(settings: Settings) -> str:
    return (
        f"PostgreSQL {mask_url(settings.database_url)}, "
        f"ClickHouse {mask_url(settings.clickhouse_url)}, data folder {settings.data_dir}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msd", description="Market supervision analytics: alerts, trends, top companies."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _add_setting_flags(sub)
        sub.set_defaults(run=run)
        return sub

    command("migrate", cmd_migrate, "Create or upgrade both schemas, then exit.")
    serve = command("serve", cmd_serve, "Serve the API (and replicate, unless told not to).")
    serve.add_argument(
        "--no-replicate",
        action="store_true",
        help="leave replication to a separate `msd replicate`",
    )
    serve.add_argument(
        "--schedule",
        action="store_true",
        help="run the scheduled jobs in this process (embedded mode; see msd scheduler --list)",
    )
    ingest = command("ingest", cmd_ingest, "Load alert files (CSV, JSON Lines, Parquet).")
    ingest.add_argument("files", nargs="+", help="files to load")
    ingest.add_argument(
        "--format",
        default=None,
        help="native, cfpb, violation_tracker or a mapping .toml (default: detect)",
    )
    ingest.add_argument("--rejects", default=None, help="where to write rejected rows (CSV)")
    replicate = command("replicate", cmd_replicate, "Replicate changes to ClickHouse.")
    replicate.add_argument("--once", action="store_true", help="drain what is there, then exit")
    worker = command("worker", cmd_worker, "Run batch tasks from Redis (needs MSD_REDIS_URL).")
    worker.add_argument("--concurrency", type=int, default=2, help="tasks run at a time")
    worker.add_argument("--queue", default="msd-batch", help="Redis stream of the tasks")
    worker.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="seconds before a task a dead worker held goes to another (above the longest batch)",
    )
    reconcile = command(
        "reconcile", cmd_reconcile, "Compare ClickHouse with PostgreSQL day by day (exit 1: gaps)."
    )
    reconcile.add_argument(
        "--repair",
        action="store_true",
        help="correct the differences through replication (correction events)",
    )
    snapshot = command("snapshot", cmd_snapshot, "Write a Parquet snapshot of the alerts.")
    snapshot.add_argument("--out", default=None, help="folder (default MSD_SNAPSHOT_DIR)")
    snapshot.add_argument(
        "--keep", type=int, default=None, help="then delete all but the N newest snapshots"
    )
    scheduler = command("scheduler", cmd_scheduler, "Run the scheduled jobs (MSD_SCHEDULE_FILE).")
    scheduler.add_argument("--list", action="store_true", help="print the schedules and exit")
    scheduler.add_argument(
        "--queue", default="msd-batch", help="Redis stream the workers read (with MSD_REDIS_URL)"
    )
    demo = command("demo", cmd_demo, "Start everything embedded on demo data and serve it.")
    demo.add_argument(
        "--from",
        dest="from_files",
        nargs="+",
        default=None,
        help="load these files instead of generated data",
    )
    demo.add_argument("--alerts", type=int, default=DEMO_ALERTS, help="generated alerts to load")
    demo.add_argument("--seed", type=int, default=7, help="seed of the generated data")
    _add_chart_flags(command("chart", cmd_chart, "Draw a dashboard chart to a file."))
    stop = command(
        "stop", cmd_stop, "Stop the embedded PostgreSQL server, unless a process is using it."
    )
    stop.add_argument(
        "--force",
        action="store_true",
        help="stop it even while processes use it (they fail until a command starts it again)",
    )
    add_account_commands(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        _configure_logging(settings.log_level)
        return int(args.run(settings, args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if not _says_what_to_fix(error):
            raise
        print(f"msd: error: {error}", file=sys.stderr)
        return USAGE_ERROR


def _says_what_to_fix(error: Exception) -> bool:
    """Whether the message alone tells the user what to change (a traceback would only hide it)."""
    # Imported here: the ingest and ClickHouse packages are heavy, and only this path needs them.
    from ingest.errors import IngestError
    from olap.store import StoreBusyError, StoreUnavailableError
    from workflow.embedded import EmbeddedPostgresInUse

    return isinstance(
        error,
        (
            SettingsError,
            AccountError,
            IngestError,
            StoreBusyError,
            StoreUnavailableError,
            EmbeddedPostgresInUse,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
